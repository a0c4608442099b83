// A node:test reporter for scripts/run-tests.mjs: counts what ran, passed,
// failed, was skipped or is todo, by test file, and writes them as one JSON
// object when the run ends ({files: {FILE: {passed failed skipped todo}},
// skipped: [{file name reason}], failed: [{file name}]}). The runner adds them
// up by folder. It runs beside the usual reporter, which keeps the normal output.
//
// What counts: every test that is not a suite (a file that fails to load or
// crashes is one failed test); a skipped suite counts as one skipped test (its
// tests are never reported); a suite counts as failed only for a failure of its
// own (a hook), not for its tests' failures, which are counted already.
// A test belongs to the file whose process ran it (the files run one at a time),
// not to the file that declared it: test/support/prerequisites.ts declares the
// failing test of a missing prerequisite for the test file that needs it.

export default async function* countsReporter(source) {
  const files = {};
  const skipped = [];
  const failed = [];
  /** Per file, the names of the tests being run, by nesting level. */
  const stacks = new Map();
  /** The test file being run: node announces each file as a test named by its path. */
  let running;
  const fileOf = (data) => running ?? data.file ?? '(unknown file)';
  const counts = (file) => (files[file] ??= { passed: 0, failed: 0, skipped: 0, todo: 0 });
  const fullName = (data) => {
    const stack = stacks.get(fileOf(data)) ?? [];
    return [...stack.slice(0, data.nesting), data.name].join(' › ');
  };

  for await (const event of source) {
    const data = event.data;
    switch (event.type) {
      case 'test:dequeue':
        if (data.nesting === 0 && data.file !== undefined && data.name === data.file)
          running = data.file;
        break;
      case 'test:start': {
        const stack = stacks.get(fileOf(data)) ?? [];
        stack.length = data.nesting;
        stack.push(data.name);
        stacks.set(fileOf(data), stack);
        break;
      }
      case 'test:pass':
      case 'test:fail': {
        const file = fileOf(data);
        const c = counts(file);
        const suite = data.details?.type === 'suite';
        if (data.skip !== undefined && data.skip !== false) {
          c.skipped++;
          const reason = typeof data.skip === 'string' ? data.skip : '';
          skipped.push({ file, name: fullName(data) + (suite ? ' (suite)' : ''), reason });
        } else if (data.todo !== undefined && data.todo !== false) {
          c.todo++;
        } else if (event.type === 'test:pass') {
          if (!suite) c.passed++;
        } else if (!suite || data.details?.error?.failureType !== 'subtestsFailed') {
          c.failed++;
          failed.push({ file, name: fullName(data) });
        }
        break;
      }
      default:
        break;
    }
  }
  yield `${JSON.stringify({ files, skipped, failed })}\n`;
}
