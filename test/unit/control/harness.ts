// A control server for tests: a temp directory with the socket and the settings
// store, an in-process engine with $config/$machine/$log, fake services (with log
// buffers) and a scripted interface controller. Also a raw line client for protocol
// tests. close() removes everything, and is safe to call after a failure.

import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toDisposable, type Disposable } from '../../../src/base/disposable.ts';
import { Dataspace, Engine, type Logger } from '../../../src/dataspace/index.ts';
import { dict, is, record, sym, ValueMap, type Value } from '../../../src/preserves/index.ts';
import {
  SettingsDirectory,
  startControlServer,
  type ControlServer,
  type ControlServerOptions,
  type InterfaceController,
  type InterfaceRequestOptions,
  type InterfaceResult,
  type LogEntry,
  type LogSource,
  type ServiceDetail,
  type ServiceInfo,
  type ServiceView,
} from '../../../src/control/index.ts';
import { until } from '../../support/until.ts';

export class FakeLog implements LogSource {
  readonly lines: LogEntry[] = [];
  readonly #followers = new Set<(e: LogEntry) => void>();
  get followers(): number {
    return this.#followers.size;
  }
  append(
    line: string,
    stream = 'stdout',
    time = Date.UTC(2024, 0, 1, 12, 0, this.lines.length),
  ): void {
    const e = { time, stream, line };
    this.lines.push(e);
    for (const f of this.#followers) f(e);
  }
  tail(n: number = this.lines.length): LogEntry[] {
    return n <= 0 ? [] : this.lines.slice(-n);
  }
  follow(listener: (e: LogEntry) => void): Disposable {
    const f = (e: LogEntry): void => listener(e);
    this.#followers.add(f);
    return toDisposable(() => this.#followers.delete(f));
  }
}

export class FakeServices implements ServiceView {
  readonly details = new ValueMap<ServiceDetail>();
  readonly logSources = new ValueMap<FakeLog>();
  add(detail: ServiceDetail): FakeLog {
    this.details.set(detail.service, detail);
    return this.logSources.getOrCreate(detail.service, () => new FakeLog());
  }
  list(): ServiceInfo[] {
    return [...this.details.values()];
  }
  detail(service: Value): ServiceDetail | undefined {
    return this.details.get(service);
  }
  logs(service: Value): LogSource | undefined {
    return this.logSources.get(service);
  }
}

/**
 * Interfaces whose name says what happens: `ok*` comes up after two progress events,
 * `bad*` fails with "no carrier", `slow*` waits until aborted (then fails), `throw*`
 * throws. `aborted` counts the requests that saw their signal abort.
 */
export class FakeInterfaces implements InterfaceController {
  aborted = 0;
  readonly calls: string[] = [];
  up(ifname: string, o: InterfaceRequestOptions): Promise<InterfaceResult> {
    return this.#run('up', ifname, o);
  }
  down(ifname: string, o: InterfaceRequestOptions): Promise<InterfaceResult> {
    return this.#run('down', ifname, o);
  }
  async #run(which: string, ifname: string, o: InterfaceRequestOptions): Promise<InterfaceResult> {
    this.calls.push(`${which} ${ifname}`);
    await Promise.resolve();
    if (ifname.startsWith('ok')) {
      o.onProgress('link is up');
      o.onProgress(record('dhcp', 'lease', '192.0.2.10/24'));
      return { ok: true, detail: dict({ address: '192.0.2.10/24' }) };
    }
    if (ifname.startsWith('bad')) {
      o.onProgress('waiting for carrier');
      return { ok: false, reason: 'no carrier' };
    }
    if (ifname.startsWith('throw')) throw new Error('driver exploded');
    o.onProgress('waiting forever');
    await new Promise<void>((resolve) =>
      o.signal.addEventListener('abort', () => resolve(), { once: true }),
    );
    this.aborted++;
    return { ok: false, reason: 'aborted' };
  }
}

export interface LogRecord {
  readonly level: 'error' | 'warn' | 'info';
  readonly message: string;
}

export interface Harness {
  readonly dir: string;
  readonly socketPath: string;
  readonly engine: Engine;
  readonly config: Dataspace;
  readonly machine: Dataspace;
  readonly log: Dataspace;
  readonly services: FakeServices;
  readonly interfaces: FakeInterfaces;
  readonly settings: SettingsDirectory;
  readonly settingsDir: string;
  readonly logged: LogRecord[];
  readonly server: ControlServer;
  close(): Promise<void>;
}

export async function startHarness(extra: Partial<ControlServerOptions> = {}): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'limen-control-'));
  const logged: LogRecord[] = [];
  const logger: Logger = {
    error: (message) => void logged.push({ level: 'error', message }),
    warn: (message) => void logged.push({ level: 'warn', message }),
    info: (message) => void logged.push({ level: 'info', message }),
  };
  const engine = new Engine({ logger });
  const config = new Dataspace(engine, 'config');
  const machine = new Dataspace(engine, 'machine');
  const log = new Dataspace(engine, 'log');
  const services = new FakeServices();
  const interfaces = new FakeInterfaces();
  const settingsDir = join(dir, 'var/lib/limen/user-settings');
  const settings = new SettingsDirectory(settingsDir);
  const socketPath = join(dir, 'run/limen/control.sock');
  let server: ControlServer;
  try {
    server = await startControlServer({
      socketPath,
      facet: engine.root,
      dataspaces: { config: config.ref, machine: machine.ref, log: log.ref },
      services,
      interfaces,
      settings,
      status: () => dict({ version: '0.1.0', services: services.details.size }),
      logger,
      ...extra,
    });
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    dir,
    socketPath,
    engine,
    config,
    machine,
    log,
    services,
    interfaces,
    settings,
    settingsDir,
    logged,
    server,
    async close() {
      try {
        await server.close();
      } finally {
        engine.root.stop();
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}

/** A protocol-level client: writes raw lines, collects the lines it receives. */
export class RawClient {
  readonly socket: Socket;
  readonly lines: string[] = [];
  closed = false;
  #buf = '';
  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (s: string) => {
      this.#buf += s;
      let nl: number;
      while ((nl = this.#buf.indexOf('\n')) >= 0) {
        this.lines.push(this.#buf.slice(0, nl));
        this.#buf = this.#buf.slice(nl + 1);
      }
    });
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => undefined);
  }
  static connect(path: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = connect(path);
      s.once('connect', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }
  send(line: string): void {
    this.socket.write(line + '\n');
  }
  /** Waits for a line matching re (after the greeting) and returns it. */
  waitFor(re: RegExp, timeoutMs = 5000): Promise<string> {
    return until(() => this.lines.find((l) => re.test(l)), {
      timeoutMs,
      describe: () => `a line matching ${re} (got ${JSON.stringify(this.lines.slice(-5))})`,
    });
  }
  close(): void {
    this.socket.destroy();
  }
}

export function daemon(name: string): Value {
  return record('daemon', sym(name));
}

export function sameValue(a: Value, b: Value): boolean {
  return is(a, b);
}
