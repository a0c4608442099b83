// First contact (issue 11, point 15): every command that README.md's shell blocks,
// the demo and `limen lab up` print works as printed, on this checkout, as root.
// Each runs as `sh -c COMMAND` from the checkout's root. README.md's commands run
// with bin/ first on PATH (what `npm link` gives, as README.md says; bin/limen links
// to bin/limen.js); the demo's commands run with the PATH we were given, since the
// demo prints them for someone who has no `limen` on theirs.
//
// The commands that cannot run exactly as printed, and what is done instead:
//   npm test                 not run: it is the whole suite, this file included (CI
//                            runs it: .ci/run).
//   npm run demo             runs until Ctrl-C: run as printed; once its live view
//                            starts, every command it printed runs, in order; then
//                            SIGINT to its process group (a terminal's Ctrl-C): the
//                            demo tears its lab down.
//   /tmp/limen               (the daemon's --root, and the socket under it) becomes
//                            a private directory: /tmp is shared by the machine.
//   limen daemon …           runs in the foreground: started in the background,
//                            used by the commands after it, stopped with SIGTERM.
//   export NAME=VALUE        sets the environment of the commands after it, as in
//                            the one shell the README's block reads as.
//   limen logs -f …, limen watch …
//                            follow until Ctrl-C: run until their first line, then
//                            SIGINT.
//   --name a, lab down a     the lab's name becomes a random one: labs of other runs
//                            (or people) may be up under the name `a`.
// Every other command must exit 0.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labDown, labNames, packageRoot } from '../../src/lab/lab.ts';
import { until } from '../support/until.ts';
import { labSkip } from './harness.ts';

const ROOT = packageRoot();

/** Every command in a markdown text's ```sh blocks: `\`-continued lines joined; blank and comment lines left out. */
export function shellCommands(markdown: string): string[] {
  const out: string[] = [];
  for (const m of markdown.matchAll(/^```sh\n([\s\S]*?)^```/gm)) {
    let current = '';
    for (const line of m[1]!.split('\n')) {
      if (current === '' && (line.trim() === '' || line.trim().startsWith('#'))) continue;
      current = current === '' ? line : `${current}\n${line}`;
      if (line.endsWith('\\')) continue;
      out.push(current);
      current = '';
    }
  }
  return out;
}

/** The indented lines after `heading` in out, up to the next blank line. */
function printedAfter(out: string, heading: RegExp): string[] {
  const lines = out.split('\n');
  const at = lines.findIndex((l) => heading.test(l));
  if (at < 0) return [];
  const cmds: string[] = [];
  for (const l of lines.slice(at + 1)) {
    if (!l.startsWith('  ')) break;
    cmds.push(l.trim());
  }
  return cmds;
}

interface Running {
  readonly pid: number;
  out(): string;
  err(): string;
  /** Resolves with the exit code (128+N for a signal N, as a shell shows it). */
  readonly exited: Promise<number>;
  /** Sends SIGNAL to its process group, as a terminal does. */
  signal(signal: NodeJS.Signals): void;
}

/** `sh -c COMMAND` in its own process group, from the checkout's root. */
function start(command: string, env: NodeJS.ProcessEnv): Running {
  const child = spawn('sh', ['-c', command], {
    cwd: ROOT,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number>((resolve) => {
    child.on('error', (e) => {
      err += String(e);
      resolve(127);
    });
    child.on('close', (code, signal) =>
      resolve(code ?? 128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 9)),
    );
  });
  const pid = child.pid!;
  return {
    pid,
    out: () => out,
    err: () => err,
    exited,
    signal(s) {
      try {
        process.kill(-pid, s);
      } catch {
        // Already gone.
      }
    },
  };
}

/** Runs COMMAND to its end (bounded); the group is killed if it outlives timeoutMs. */
async function run(
  command: string,
  env: NodeJS.ProcessEnv,
  timeoutMs = 120_000,
): Promise<{ code: number; out: string; err: string }> {
  const r = start(command, env);
  try {
    const code = await until(r.exited, {
      timeoutMs,
      describe: () => `\`${command}\` to finish; it printed:\n${r.out()}${r.err()}`,
    });
    return { code, out: r.out(), err: r.err() };
  } finally {
    r.signal('SIGKILL');
  }
}

function shown(command: string, r: { code: number; out: string; err: string }): string {
  return `\`${command}\` exited ${r.code}:\n--- stdout\n${r.out}\n--- stderr\n${r.err}`;
}

describe(
  'every command README.md and the demo print works as printed',
  {
    skip: labSkip(),
    timeout: 600_000,
  },
  () => {
    const lab = `t${randomBytes(3).toString('hex')}`;
    let dir: string;
    let readmeEnv: NodeJS.ProcessEnv;
    const background: Running[] = [];

    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'limen-first-contact-'));
      const env = { ...process.env };
      delete env['LIMEN_SOCKET'];
      readmeEnv = { ...env, PATH: `${join(ROOT, 'bin')}:${env['PATH'] ?? '/usr/bin:/bin'}` };
    });
    after(async () => {
      for (const r of background) r.signal('SIGKILL');
      for (const name of [lab, 'demo']) if (labNames().includes(name)) await labDown(name);
      rmSync(dir, { recursive: true, force: true });
    });

    it('extracts the commands of README.md', () => {
      const cmds = shellCommands(readFileSync(join(ROOT, 'README.md'), 'utf8'));
      assert.ok(
        cmds.some((c) => c.startsWith('npm run demo')),
        cmds.join('\n'),
      );
      assert.ok(
        cmds.some((c) => c.startsWith('limen daemon ')),
        cmds.join('\n'),
      );
      assert.ok(
        cmds.some((c) => c.includes('\n  | limen preserves convert')),
        'a continued line',
      );
    });

    it('runs them in order, and the demo’s and `lab up`’s too', async () => {
      const cmds = shellCommands(readFileSync(join(ROOT, 'README.md'), 'utf8'));
      const notRun: string[] = [];
      let ran = 0;
      let daemon: Running | undefined;
      for (const printed of cmds) {
        const command = printed
          .replaceAll('/tmp/limen', join(dir, 'limen'))
          .replace(/ --name a\b/g, ` --name ${lab}`)
          .replace(/^limen lab down a\b/, `limen lab down ${lab}`);
        const first = command.split(/\s+/).slice(0, 3).join(' ');

        if (/^npm test\b/.test(command)) {
          notRun.push(printed);
          continue;
        }
        ran++;
        const exported = /^export (\w+)=(\S+)/.exec(command);
        if (exported !== null) {
          readmeEnv = { ...readmeEnv, [exported[1]!]: exported[2]! };
          continue;
        }
        if (/^npm run demo\b/.test(command)) {
          await demo(command);
          continue;
        }
        if (/^limen daemon\b/.test(command)) {
          daemon = start(command, readmeEnv);
          background.push(daemon);
          const socket = join(dir, 'limen', 'run', 'limen', 'control.sock');
          await until(
            async () =>
              daemon!.out() + daemon!.err() !== '' &&
              (await run(`limen status --socket ${socket}`, readmeEnv)).code === 0,
            {
              timeoutMs: 30_000,
              intervalMs: 100,
              describe: () => `\`${printed}\` to answer; it printed:\n${daemon!.err()}`,
            },
          );
          continue;
        }
        if (/^limen (logs -f|watch)\b/.test(command)) {
          const r = start(command, readmeEnv);
          background.push(r);
          await until(() => r.out().trim() !== '', {
            timeoutMs: 30_000,
            describe: () => `a first line from \`${printed}\`; it printed:\n${r.out()}${r.err()}`,
          });
          r.signal('SIGINT');
          const code = await until(r.exited, {
            timeoutMs: 10_000,
            describe: () => `${first} to stop`,
          });
          assert.ok(code === 0 || code === 130, `\`${printed}\` after Ctrl-C: exit ${code}`);
          continue;
        }
        const r = await run(command, readmeEnv);
        assert.equal(r.code, 0, shown(printed, r));
        if (/^limen lab up\b/.test(command)) {
          // What `lab up` prints to try next (but `lab down`, which the README runs last).
          const next = printedAfter(r.out, /^lab \S+ is up/).filter((c) => !/ lab down /.test(c));
          assert.ok(next.length >= 2, `lab up printed what to try:\n${r.out}`);
          for (const c of next) {
            const n = await run(c, readmeEnv);
            assert.equal(n.code, 0, shown(c, n));
          }
        }
      }
      assert.deepEqual(
        notRun.map((c) => c.replace(/\s+#.*$/, '')),
        ['npm test'],
        'only `npm test` is not run',
      );
      assert.ok(ran >= 15, `${ran} commands ran`);
      assert.equal(labNames().includes(lab), false, '`limen lab down` removed the lab');
      if (daemon !== undefined) {
        daemon.signal('SIGTERM');
        const code = await until(daemon.exited, {
          timeoutMs: 30_000,
          describe: () => 'the daemon to stop',
        });
        assert.ok(
          code === 0 || code === 143,
          `limen daemon after SIGTERM: exit ${code}\n${daemon.err()}`,
        );
      }
    });

    /** `npm run demo`: its live view, every command it printed, then Ctrl-C. */
    async function demo(command: string): Promise<void> {
      const env = { ...process.env };
      delete env['LIMEN_SOCKET'];
      const r = start(command, env);
      background.push(r);
      const heading = /Poke at it from another terminal:/;
      await until(
        () =>
          printedAfter(r.out(), heading).length > 0 &&
          r.out().includes('\n\n', r.out().search(heading)),
        {
          timeoutMs: 240_000,
          intervalMs: 100,
          describe: () => `the demo's live view; it printed:\n${r.out()}${r.err()}`,
        },
      );
      const printed = printedAfter(r.out(), heading);
      assert.ok(printed.length >= 4, `the demo printed what to try:\n${r.out()}`);
      for (const c of printed) {
        assert.doesNotMatch(c, /^sudo /, 'run as root without sudo: no sudo to print');
        const n = await run(c, env);
        assert.equal(n.code, 0, shown(c, n));
      }
      // The dashboard it printed: the URL on this machine logs in with the password.
      const web = /Web dashboard: (http:\/\/127\.0\.0\.1:\d+\/)\s+password: (\S+)/.exec(r.out());
      assert.ok(web !== null, `the demo printed the dashboard's URL and password:\n${r.out()}`);
      const page = await fetch(web[1]!);
      assert.match(await page.text(), /<title>limen/);
      const login = await fetch(new URL('/api/login', web[1]), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ password: web[2] }),
      });
      assert.equal(login.status, 200, await login.text());
      r.signal('SIGINT');
      const code = await until(r.exited, {
        timeoutMs: 60_000,
        describe: () => `the demo to stop after Ctrl-C; it printed:\n${r.out()}${r.err()}`,
      });
      assert.match(r.out(), /the lab is gone/, r.out() + r.err());
      assert.ok(code === 0 || code === 130, `npm run demo after Ctrl-C: exit ${code}\n${r.err()}`);
      assert.equal(labNames().includes('demo'), false, 'the demo removed its lab');
    }
  },
);
