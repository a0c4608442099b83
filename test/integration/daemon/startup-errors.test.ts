// Start-up problems are said in one line, with no stack trace, and the daemon
// exits 1 having made nothing: a --config root that does not exist (it used to
// start with `config-errors none`), a socket path longer than a Unix socket's
// (it used to print a stack trace and leave a socket with a cut name), and a user
// other than root with the default paths (a stack trace). A script placed
// directly in a site root, beside core/ and services/, belongs to no layer: it is
// reported as a config error with its path, in `limen status` and the log, for
// as long as it is there (it used to be ignored without a word).

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlClient } from '../../../src/control/client.ts';
import { Dict, Sym, peel, type Value } from '../../../src/preserves/index.ts';
import { DaemonProcess } from '../../support/daemon-process.ts';
import { until } from '../../support/until.ts';
import { prerequisites } from '../../support/prerequisites.ts';

const NOBODY = 65534;

describe('start-up errors', () => {
  const dirs: string[] = [];
  const daemons: DaemonProcess[] = [];
  after(async () => {
    for (const d of daemons) if (d.running) await d.stop('SIGKILL');
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  function tempDir(): string {
    const d = mkdtempSync(join(tmpdir(), 'limen-startup-'));
    dirs.push(d);
    return d;
  }

  function daemon(args: string[], options: ConstructorParameters<typeof DaemonProcess>[1] = {}) {
    const d = new DaemonProcess(args, options);
    daemons.push(d);
    return d;
  }

  /** Exit 1 and exactly one line, which matches `says`; no stack trace. */
  async function failsWith(d: DaemonProcess, says: RegExp): Promise<string> {
    const { code } = await d.exit();
    assert.equal(d.stderr.length, 1, `one line:\n${d.stderr.join('\n')}`);
    assert.equal(code, 1, d.stderr.join('\n'));
    assert.match(d.stderr[0]!, says);
    return d.stderr[0]!;
  }

  it('says that a --config root does not exist, and makes nothing', async () => {
    const dir = tempDir();
    const root = join(dir, 'root');
    const missing = join(dir, 'no-such-site');
    const d = daemon(['--root', root, '--config', missing, '--no-network']);
    await failsWith(d, new RegExp(`^limen daemon: --config ${missing}: no such directory$`));
    assert.equal(existsSync(root), false, 'nothing made under --root');
  });

  it('says that the socket path is too long, and leaves no socket', async () => {
    const dir = tempDir();
    const socket = join(dir, `${'s'.repeat(120)}.sock`);
    const d = daemon(['--root', join(dir, 'root'), '--socket', socket, '--no-network']);
    await failsWith(
      d,
      /^limen daemon: .*: too long for a Unix socket \(\d+ bytes; the limit is 107/,
    );
    assert.deepEqual(readdirSync(dir), [], 'nothing made (no socket under a cut name, no root)');
    // The default socket under a --root that is too deep.
    const deep = join(dir, 'r'.repeat(90));
    const e = daemon(['--root', deep, '--no-network']);
    await failsWith(e, /too long for a Unix socket/);
    assert.equal(existsSync(deep), false);
  });

  it(
    'tells a user other than root what to do, with the default paths',
    { skip: prerequisites({ root: 'runs the CLI as nobody' }) },
    async () => {
      const d = daemon(['--no-network'], { uid: NOBODY, gid: NOBODY });
      await failsWith(
        d,
        /^limen daemon: cannot .* \/var\/lib\/limen: (EACCES|EPERM) \(limen daemon runs as root; as another user, give it --root DIR\)$/,
      );
    },
  );

  it('reports a script placed directly in a site root, with its path, while it is there', async () => {
    const dir = tempDir();
    const site = join(dir, 'site');
    mkdirSync(join(site, 'services'), { recursive: true });
    const stray = join(site, 'stray.pr');
    writeFileSync(stray, '<require-service <daemon x>>\n');
    const root = join(dir, 'root');
    const d = daemon(['--root', root, '--config', site, '--no-network']);
    await d.started();
    const status = async (): Promise<string> => {
      const c = await ControlClient.connect(join(root, 'run/limen/control.sock'));
      try {
        const s = peel(await c.status());
        assert.ok(s instanceof Dict);
        // The config errors among the failures, as `path:line:col: message` lines.
        const failures = peel(s.get(new Sym('failures')) as Value);
        assert.ok(Array.isArray(failures));
        const lines = (failures as Value[])
          .map((f) => peel(f))
          .filter((f): f is Dict => f instanceof Dict)
          .filter((f) => peel(f.get(new Sym('kind')) as Value) === 'config-error')
          .map((f) => peel(f.get(new Sym('text')) as Value) as string);
        return lines.length === 0 ? 'none' : lines.join('\n');
      } finally {
        c.close();
      }
    };
    const message = `not loaded: a script directly in the site root ${site} belongs to no layer; move it into core/ or services/`;
    assert.equal(
      await until(async () => ((await status()) !== 'none' ? status() : undefined)),
      `${stray}:0:0: ${message}`,
    );
    await d.waitFor(
      'the config error in the log',
      (l) => l.msg === 'config-error' && l.subject === stray,
    );
    // Moved into a layer: the error goes; a new one appears as soon as it is written.
    unlinkSync(stray);
    await until(async () => (await status()) === 'none', { describe: () => 'the error to clear' });
    const later = join(site, 'later.pr');
    writeFileSync(later, '<x>\n');
    assert.equal(
      await until(async () => ((await status()) !== 'none' ? status() : undefined)),
      `${later}:0:0: ${message}`,
    );
    await d.stop();
  });
});
