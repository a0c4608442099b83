// `<wireguard NAME {…}>`: every problem reported, `wg set`'s arguments (no key on
// them, ever), the key files' checks, the redaction of `wg`'s complaints, and the
// provided configuration.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from '../../../src/preserves/index.ts';
import {
  MAX_PEERS,
  endpointProblem,
  isWireguardKey,
  openWireguardSecrets,
  readWireguard,
  redactWg,
  wgSetArgs,
  wireguardProvided,
  type WireguardSpec,
} from '../../../src/net/wireguard.ts';
import { openSecretFile } from '../../../src/platform/secret-file.ts';

const key = (n: number): string => Buffer.alloc(32, n).toString('base64');
const PUB1 = key(1);
const PUB2 = key(2);
const PRIVATE = key(9);

const dir = mkdtempSync(join(tmpdir(), 'limen-wg-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const uid = process.getuid?.() ?? 0;

function keyFile(name: string, mode = 0o600, text = PRIVATE): string {
  const p = join(dir, name);
  writeFileSync(p, `${text}\n`, { mode });
  chmodSync(p, mode);
  return p;
}

const spec = (text: string): WireguardSpec => {
  const r = readWireguard(parse(text));
  assert.ok(r.ok, r.ok ? '' : r.problems.join('; '));
  return r.spec;
};
const problems = (text: string): string => {
  const r = readWireguard(parse(text));
  assert.equal(r.ok, false, text);
  return r.ok ? '' : r.problems.join('; ');
};

const FULL = `<wireguard "wg0" {private-key-file: "/etc/limen/wg0.key" listen-port: 51820
  addresses: ["10.9.0.1/24" "fd09::1/64"]
  peers: [{public-key: "${PUB1}" preshared-key-file: "/etc/limen/wg0.psk"
           endpoint: "198.51.100.2:51820" allowed-ips: ["10.9.0.2/32" "192.168.50.0/24"]
           persistent-keepalive: 25}
          {public-key: "${PUB2}" allowed-ips: ["10.9.0.3" "fd09::3/128" "0.0.0.0/0"]}]}>`;

describe('wireguard spec', () => {
  it('reads a full spec', () => {
    const s = spec(FULL);
    assert.equal(s.name, 'wg0');
    assert.equal(s.privateKeyFile, '/etc/limen/wg0.key');
    assert.equal(s.listenPort, 51820);
    assert.deepEqual(s.addresses, ['10.9.0.1/24', 'fd09::1/64']);
    assert.deepEqual(s.peers[0], {
      publicKey: PUB1,
      presharedKeyFile: '/etc/limen/wg0.psk',
      endpoint: '198.51.100.2:51820',
      allowedIps: ['10.9.0.2/32', '192.168.50.0/24'],
      persistentKeepalive: 25,
    });
    // An address alone is a host.
    assert.deepEqual(s.peers[1]!.allowedIps, ['10.9.0.3/32', 'fd09::3/128', '0.0.0.0/0']);
    assert.equal(s.peers[1]!.persistentKeepalive, 0);
  });

  it('refuses a key in the configuration text and reports every problem', () => {
    const p = problems(
      `<wireguard "wg0" {private-key: "${PRIVATE}" listen-port: 70000 addresses: ["10.9.0.1"]
        peers: [{public-key: "abc" allowed-ips: ["10.9.0.300/32" "192.168.50.1/24" 5]
                 endpoint: "host name:1" persistent-keepalive: -1}]}>`,
    );
    assert.match(p, /unknown option private-key /);
    assert.match(p, /a key is never written in the configuration: put the private-key in a file/);
    assert.match(p, /private-key-file is required/);
    assert.match(p, /listen-port must be a whole number from 1 to 65535/);
    assert.match(p, /addresses: needs a prefix length/);
    assert.match(p, /peer 1: public-key is not a WireGuard key/);
    assert.match(p, /peer 1: allowed-ips: "10\.9\.0\.300" is not an IPv4 or IPv6 address/);
    assert.match(p, /peer 1: allowed-ips: 192\.168\.50\.1\/24 has bits set beyond/);
    assert.match(p, /peer 1: allowed-ips: 5 is not a string/);
    assert.match(p, /peer 1: endpoint must be a non-empty string/);
    assert.match(p, /peer 1: persistent-keepalive must be a whole number from 0 to 65535/);
    // The key itself is not repeated in the problems.
    assert.doesNotMatch(p, new RegExp(PRIVATE.replace(/[+/=]/g, '.')));
  });

  it('refuses relative key paths, a peer without allowed IPs, and repeated keys or networks', () => {
    const p = problems(
      `<wireguard "wg0" {private-key-file: "wg0.key" peers: [
        {public-key: "${PUB1}" allowed-ips: []}
        {public-key: "${PUB1}" allowed-ips: ["10.0.0.0/8"] preshared-key-file: "/etc/../psk"}
        {public-key: "${PUB2}" allowed-ips: ["10.0.0.0/8"]}]}>`,
    );
    assert.match(p, /private-key-file must be an absolute path/);
    assert.match(p, /peer 1: allowed-ips must not be empty/);
    assert.match(p, /peer 2: preshared-key-file must be an absolute path without '\.\.'/);
    const q = problems(
      `<wireguard "wg0" {private-key-file: "/k" peers: [
        {public-key: "${PUB1}" allowed-ips: ["10.0.0.0/8"]}
        {public-key: "${PUB1}" allowed-ips: ["10.0.0.0/8"]}]}>`,
    );
    assert.match(q, /peer 2: public-key is another peer's too/);
    assert.match(q, /peer 2: allowed-ips 10\.0\.0\.0\/8 is peer 1's too/);
  });

  it("refuses allowed IPs that hold the peer's own endpoint", () => {
    const p = problems(
      `<wireguard "wg0" {private-key-file: "/k" peers: [{public-key: "${PUB1}"
         endpoint: "198.51.100.2:51820" allowed-ips: ["198.51.100.0/24"]}]}>`,
    );
    assert.match(p, /allowed-ips 198\.51\.100\.0\/24 holds the endpoint 198\.51\.100\.2/);
  });

  it('bounds the peer list', () => {
    const peer = `{public-key: "${PUB1}" allowed-ips: ["10.0.0.1"]}`;
    const p = problems(
      `<wireguard "wg0" {private-key-file: "/k" peers: [${Array(MAX_PEERS + 1)
        .fill(peer)
        .join(' ')}]}>`,
    );
    assert.match(p, /peers has 257 entries; at most 256 are allowed/);
  });

  it('checks keys and endpoints', () => {
    assert.equal(isWireguardKey(PUB1), true);
    assert.equal(isWireguardKey(PUB1.replace('=', 'A')), false);
    assert.equal(isWireguardKey(`${PUB1.slice(0, 42)}B=`), false, 'bits beyond 32 bytes');
    assert.equal(endpointProblem('198.51.100.2:51820'), undefined);
    assert.equal(endpointProblem('[2001:db8::1]:51820'), undefined);
    assert.equal(endpointProblem('vpn.example.org:51820'), undefined);
    assert.match(endpointProblem('2001:db8::1:51820')!, /HOST:PORT/);
    assert.match(endpointProblem('198.51.100.2:0')!, /port 0/);
    assert.match(endpointProblem('[10.0.0.1]:1')!, /not an IPv6/);
  });
});

describe('wg set', () => {
  it('names key files by descriptor, removes peers no longer wanted, and carries no key', () => {
    const s = spec(FULL);
    const args = wgSetArgs(s, [PUB2, key(3)], {
      privateKey: '/proc/self/fd/3',
      presharedKeys: ['/proc/self/fd/4', '/dev/null'],
    });
    assert.deepEqual(args, [
      ...['set', 'wg0', 'private-key', '/proc/self/fd/3', 'listen-port', '51820'],
      ...['peer', key(3), 'remove'],
      ...['peer', PUB1, 'preshared-key', '/proc/self/fd/4', 'endpoint', '198.51.100.2:51820'],
      ...['persistent-keepalive', '25', 'allowed-ips', '10.9.0.2/32,192.168.50.0/24'],
      ...['peer', PUB2, 'preshared-key', '/dev/null', 'persistent-keepalive', 'off'],
      ...['allowed-ips', '10.9.0.3/32,fd09::3/128,0.0.0.0/0'],
    ]);
    assert.ok(!args.includes(PRIVATE));
  });

  it('opens key files as descriptors 3, 4, … and refuses unsafe ones', () => {
    const good = keyFile('good.key');
    const psk = keyFile('good.psk', 0o400, key(7));
    const s = spec(
      `<wireguard "wg0" {private-key-file: "${good}" peers: [
        {public-key: "${PUB1}" allowed-ips: ["10.0.0.1"] preshared-key-file: "${psk}"}
        {public-key: "${PUB2}" allowed-ips: ["10.0.0.2"]}]}>`,
    );
    const r = openWireguardSecrets(s, uid);
    assert.ok(r.ok);
    if (!r.ok) return;
    assert.equal(r.secrets.fds.length, 2);
    assert.equal(r.secrets.privateKey, '/proc/self/fd/3');
    assert.deepEqual(r.secrets.presharedKeys, ['/proc/self/fd/4', '/dev/null']);
    // A child reads the key from its descriptor 3: the path alone goes on the command line.
    const out = execFileSync('sh', ['-c', 'cat /proc/self/fd/3'], {
      stdio: ['ignore', 'pipe', 'pipe', r.secrets.fds[0]!],
    }).toString();
    assert.equal(out.trim(), PRIVATE);
    for (const fd of r.secrets.fds) closeSync(fd);
  });

  it('says what is wrong with each unsafe key file', () => {
    const open = keyFile('open.key', 0o644);
    const link = join(dir, 'link.key');
    symlinkSync(keyFile('target.key'), link);
    const other = keyFile('other.key');
    if (uid === 0) chownSync(other, 1234, 1234);
    execFileSync('mkfifo', [join(dir, 'fifo.key')]);
    assert.match(
      (openSecretFile(open, uid) as { problem: string }).problem,
      /read or written by others \(mode 0644\): chmod 600 it/,
    );
    assert.match((openSecretFile(link, uid) as { problem: string }).problem, /symbolic link/);
    assert.match(
      (openSecretFile(join(dir, 'fifo.key'), uid) as { problem: string }).problem,
      /not a regular file/,
    );
    assert.match((openSecretFile(dir, uid) as { problem: string }).problem, /not a regular file/);
    assert.match(
      (openSecretFile(join(dir, 'none'), uid) as { problem: string }).problem,
      /does not exist/,
    );
    if (uid === 0)
      assert.match(
        (openSecretFile(other) as { problem: string }).problem,
        /owned by uid 1234, not by root/,
      );
    const s = spec(
      `<wireguard "wg0" {private-key-file: "${open}" peers: [
        {public-key: "${PUB1}" allowed-ips: ["10.0.0.1"] preshared-key-file: "${link}"}]}>`,
    );
    const r = openWireguardSecrets(s, uid);
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.match(r.problems[0]!, /^private-key-file .*open\.key can be read or written by others/);
    assert.match(r.problems[1]!, /^peer 1: preshared-key-file .*link\.key is a symbolic link/);
    // Nothing read from the files is in what is reported.
    assert.doesNotMatch(r.problems.join(' '), /AAAA/);
    assert.equal(readFileSync(open, 'utf8').trim(), PRIVATE);
  });

  it('redacts what wg quotes from a malformed key', () => {
    const said =
      "Key is not the correct length or format: `secretstuff'\nConfiguration parsing error";
    assert.equal(
      redactWg(said),
      "Key is not the correct length or format: `(redacted)'\nConfiguration parsing error",
    );
    assert.doesNotMatch(redactWg(`oops ${PRIVATE} oops`), new RegExp(PRIVATE.slice(0, 20)));
  });
});

describe('wireguard provided configuration', () => {
  it('publishes the addresses and one route per allowed IP, but no default route', () => {
    const out = wireguardProvided(spec(FULL)).map((v) => stringify(v));
    assert.deepEqual(out, [
      '<ip-address "wg0" "10.9.0.1/24" {}>',
      '<ip-address "wg0" "fd09::1/64" {}>',
      '<ip-route ipv4 "10.9.0.2/32" {dev: "wg0" metric: 50}>',
      '<ip-route ipv4 "192.168.50.0/24" {dev: "wg0" metric: 50}>',
      '<ip-route ipv4 "10.9.0.3/32" {dev: "wg0" metric: 50}>',
      '<ip-route ipv6 "fd09::3/128" {dev: "wg0" metric: 50}>',
    ]);
  });
});
