// V8's code cache for the CLI's command bundles. The CommonJS loader compiles every file
// anew on each run, and for a command that talks to the daemon that is a good part
// of what it costs above `node -e 0` (issue 11, point 17; bench/cli.ts). This
// keeps each command bundle's compiled code, as it stood when the command ended (with the
// functions that the command ran), in dist/cli/code-cache/, and hands it to V8
// on the next run.
//
// - A cache file's name carries the bundle's size and mtime and Node's version:
//   a rebuilt bundle or another Node never meets an old cache (V8 itself checks
//   only the source's length). `npm run build` empties the directory.
// - Loading a cache runs its code, so only the owner of dist/cli (who could
//   change the bundles anyway) writes one, and one is used only if that owner
//   owns it and its directory and neither is writable by group or others.
// - Runs with V8 flags (the daemon's) compile as usual: V8 refuses a cache made
//   under other flags, and the two would overwrite each other's.
// - Anything that goes wrong (a read-only install, a full disk, a cache V8
//   refuses) only means compiling as usual.
'use strict';

const Module = require('node:module');
const { Script } = require('node:vm');
const fs = require('node:fs');
const path = require('node:path');

const dist = path.join(__dirname, '..', 'dist', 'cli');
const cacheDir = path.join(dist, 'code-cache');
const commands = path.join(dist, 'commands') + path.sep;

/** The owner of a path that group and others cannot write, or -1. */
function safeOwner(p) {
  try {
    const s = fs.statSync(p);
    return (s.mode & 0o022) === 0 ? s.uid : -1;
  } catch {
    return -1;
  }
}

function save(made) {
  try {
    fs.mkdirSync(cacheDir);
    fs.chmodSync(cacheDir, 0o755); // whatever the umask: a group-writable one is not trusted
  } catch {
    // It exists (or cannot be made: the writes below fail too).
  }
  for (const [script, file] of made) {
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, script.createCachedData());
      fs.chmodSync(tmp, 0o644);
      fs.renameSync(tmp, file);
    } catch {
      fs.rmSync(tmp, { force: true });
    }
  }
}

function useCodeCache() {
  if (process.execArgv.length > 0) return;
  const uid = safeOwner(dist);
  if (uid < 0) return;
  const trusted = safeOwner(cacheDir) === uid;
  const mayWrite = process.getuid?.() === uid;
  const made = [];
  const compile = Module.prototype._compile;
  Module.prototype._compile = function (content, filename) {
    // Only the command bundles: a vm.Script cannot import(), which main.cjs does for
    // the commands left out of the bundles (daemon, lab, check, eval).
    if (!filename.startsWith(commands) || content.includes('import('))
      return compile.call(this, content, filename);
    let file;
    try {
      const s = fs.statSync(filename);
      file = path.join(
        cacheDir,
        `${path.basename(filename)}-${s.size}-${Math.trunc(s.mtimeMs)}-${process.version}`,
      );
    } catch {
      return compile.call(this, content, filename);
    }
    let cachedData;
    if (trusted && safeOwner(file) === uid) {
      try {
        cachedData = fs.readFileSync(file);
      } catch {
        cachedData = undefined;
      }
    }
    const script = new Script(Module.wrap(content), { filename, cachedData });
    if (mayWrite && (cachedData === undefined || script.cachedDataRejected === true))
      made.push([script, file]);
    const wrapper = script.runInThisContext({ displayErrors: true });
    const require = Module.createRequire(filename);
    return wrapper.call(
      this.exports,
      this.exports,
      require,
      this,
      filename,
      path.dirname(filename),
    );
  };
  if (mayWrite) process.once('exit', () => made.length > 0 && save(made));
}

useCodeCache();
