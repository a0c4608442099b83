// A service that exits 0 at once under `restart: always`, against the real
// daemon with a real program (issue 11, point 10): it is restarted with backoff
// and given up on after the crash-loop limit (5 exits within 60 s), not forked
// for ever; the give-up reason is in `limen services`, `limen service S` and
// `limen status` (tables and --json), declared as a failure shape; a restart on
// request starts it afresh. Counts starts, never time.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../../src/cli/main.ts';
import { removeSubtreeOf } from '../../support/cgroups.ts';
import { captureIo } from '../../support/cli-io.ts';
import { DaemonProcess } from '../../support/daemon-process.ts';
import { until } from '../../support/until.ts';
import { describeProcs, killMarked, newMarker, processesWithEnv } from '../../support/processes.ts';

const MARK = 'LIMEN_TEST_MARK';
const SERVICE = '<daemon flappy>';
const REASON =
  /^crash loop: 5 exits within 60 s \(last: exited with code 0\); restart it on request once fixed$/;

async function cli(...args: string[]): Promise<string> {
  const io = captureIo();
  const code = await main(args, io);
  assert.equal(code, 0, `limen ${args.join(' ')}: ${io.stderr()}`);
  return io.stdout();
}

/** `<daemon flappy>` in limen's JSON mapping (docs/json-mapping.md). */
const SERVICE_JSON = JSON.stringify({ '@rec': [{ '@sym': 'daemon' }, { '@sym': 'flappy' }] });

interface ServiceJson {
  service: unknown;
  state: string;
  failure?: string;
  processes?: { failure?: string }[];
}

describe('a clean exit under restart: always', () => {
  const dir = mkdtempSync(join(tmpdir(), 'limen-crash-loop-test-'));
  const marker = newMarker();
  let d: DaemonProcess | undefined;
  after(async () => {
    await d?.kill();
    killMarked(MARK, marker);
    await removeSubtreeOf(join(dir, 'root'));
    rmSync(dir, { recursive: true, force: true });
  });

  it('is backed off and given up on, and the reason is in services, service and status', async () => {
    mkdirSync(join(dir, 'site/services'), { recursive: true });
    writeFileSync(
      join(dir, 'site/services/flappy.pr'),
      '<require-service <daemon flappy>>\n<daemon flappy {argv: "echo run" restart: always}>\n',
    );
    const socket = join(dir, 'root/run/limen/control.sock');
    // --no-network: a service manager only; nothing on the host's links is touched.
    d = new DaemonProcess(
      ['--root', join(dir, 'root'), '--config', join(dir, 'site'), '--no-network'],
      { env: { [MARK]: marker } },
    );
    const daemon = d;
    const starts = () => daemon.count(daemon.event(SERVICE, /^started \(pid \d+\)$/));

    await d.waitFor('flappy given up on', d.state(SERVICE, 'failed'));
    const gaveUp = d.find(d.event(SERVICE, /giving up/));
    assert.match(String(gaveUp?.msg), /^exited with code 0; giving up: crash loop: 5 exits/);
    assert.equal(gaveUp?.level, 'error');
    assert.equal(starts(), 5, 'one start per exit counted, then no more');
    assert.equal(d.count(d.output(SERVICE, /^run$/)), 5);
    // Each restart waited longer than the one before.
    const delays = d.lines
      .filter(d.event(SERVICE, /restarting in \d+ ms$/))
      .map((l) => Number(/in (\d+) ms/.exec(l.msg)![1]));
    assert.deepEqual(delays, [250, 500, 1000, 2000]);

    // limen services: the table, and --json.
    const table = await cli('services', '--socket', socket);
    assert.match(table, /^<daemon flappy>\s+failed\s/m);
    assert.ok(
      table.split('\n').some((l) => l.startsWith('<daemon flappy>: crash loop: 5 exits')),
      table,
    );
    const list = JSON.parse(await cli('services', '--json', '--socket', socket)) as ServiceJson[];
    const entry = list.find((s) => JSON.stringify(s.service) === SERVICE_JSON);
    assert.equal(entry?.state, 'failed');
    assert.match(entry?.failure ?? '', REASON);

    // limen service S: the fields, each process, and --json.
    const detail = await cli('service', 'flappy', '--socket', socket);
    assert.match(detail, /^failure\s+crash loop: 5 exits within 60 s/m);
    assert.match(detail, /^ {2}gave up: crash loop: 5 exits within 60 s/m);
    const one = JSON.parse(
      await cli('service', 'flappy', '--json', '--socket', socket),
    ) as ServiceJson;
    assert.match(one.failure ?? '', REASON);
    assert.match(one.processes?.[0]?.failure ?? '', REASON);

    // limen status: the text and --json.
    const status = await cli('status', '--socket', socket);
    assert.match(status, /service-gave-up <daemon flappy>: crash loop: 5 exits within 60 s/);
    const statusJson = JSON.parse(await cli('status', '--json', '--socket', socket)) as {
      failures: { kind: string; text: string }[];
    };
    assert.ok(
      statusJson.failures.some(
        (f) => f.kind === 'service-gave-up' && /crash loop: 5 exits/.test(f.text),
      ),
      JSON.stringify(statusJson.failures),
    );

    // The failure is an assertion of a declared shape, so that the status and the log
    // find it (docs/vocabulary.md, "Failures").
    const shapes = await cli('query', '<failure-shape ?p>', '--socket', socket);
    assert.match(shapes, /<service-gave-up _ _>/);
    const failure = await cli(
      'query',
      '<service-gave-up <daemon flappy> ?why>',
      '--socket',
      socket,
    );
    assert.match(failure, /crash loop: 5 exits within 60 s/);
    assert.equal(starts(), 5, 'still given up');

    // A restart on request clears the give-up and starts afresh; the loop is caught again.
    await cli('restart', 'flappy', '--socket', socket);
    // The give-up is withdrawn; the next one is seconds of backoff away.
    await until(
      async () =>
        !/crash loop/.test(
          await cli('query', '<service-gave-up <daemon flappy> ?why>', '--socket', socket),
        ),
      { describe: () => 'the restart to withdraw <service-gave-up <daemon flappy> _>' },
    );
    await d.waitFor(
      'flappy given up on again',
      () => starts() === 10 && d!.count(d!.state(SERVICE, 'failed')) === 2,
    );
    const answer = await cli('services', '--json', '--socket', socket);
    const again = (JSON.parse(answer) as ServiceJson[]).find(
      (s) => JSON.stringify(s.service) === SERVICE_JSON,
    );
    assert.match(again?.failure ?? '', REASON);

    d.child.kill('SIGTERM');
    assert.equal(await d.exitCode(), 0);
    assert.equal(starts(), 10, 'ten starts over the whole test, no more');
    const left = processesWithEnv(MARK, marker);
    assert.deepEqual(left, [], `left behind: ${describeProcs(left)}`);
  });
});
