#!/usr/bin/env node
// Stand-ins for `ip` and `wg` (this machine's kernel has neither VLAN nor WireGuard;
// the real ones are tested in the VM, test/vm/links.test.ts): the links live in
// STATE/links.json, every command line is appended to STATE/argv.log, and `wg set`
// reads its key files as the real one does, recording a digest of what it read.
//   node fake-link-tools.mjs ip STATE ARGS…     node fake-link-tools.mjs wg STATE ARGS…

import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';

const [tool, dir, ...args] = process.argv.slice(2);
const file = join(dir, 'links.json');
const links = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : [];
const save = () => writeFileSync(file, JSON.stringify(links));
const find = (name) => links.find((l) => l.ifname === name);
const fail = (text) => {
  process.stderr.write(`${text}\n`);
  process.exit(1);
};
appendFileSync(join(dir, 'argv.log'), `${JSON.stringify([tool, ...args])}\n`);

function ip() {
  const a = args.join(' ');
  let m;
  if ((m = /^-j -d link show dev (\S+)$/.exec(a))) {
    const l = find(m[1]);
    if (l === undefined) fail(`Device "${m[1]}" does not exist.`);
    process.stdout.write(JSON.stringify([l]));
  } else if (a === '-j -d link show') process.stdout.write(JSON.stringify(links));
  else if ((m = /^link add link (\S+) name (\S+) type vlan id (\d+)$/.exec(a))) {
    if (find(m[2])) fail('RTNETLINK answers: File exists');
    const info = { info_kind: 'vlan', info_data: { protocol: '802.1Q', id: Number(m[3]) } };
    links.push({ ifindex: links.length + 100, ifname: m[2], link: m[1], linkinfo: info });
  } else if ((m = /^link add dev (\S+) type wireguard$/.exec(a))) {
    if (find(m[1])) fail('RTNETLINK answers: File exists');
    const info = { info_kind: 'wireguard' };
    links.push({ ifindex: links.length + 100, ifname: m[1], linkinfo: info, peers: [] });
  } else if ((m = /^link set dev (\S+) alias (\S+)$/.exec(a))) {
    const l = find(m[1]) ?? fail('Cannot find device');
    l.ifalias = m[2];
  } else if ((m = /^link del dev (\S+)$/.exec(a))) {
    const i = links.findIndex((l) => l.ifname === m[1]);
    if (i < 0) fail('Cannot find device');
    links.splice(i, 1);
  } else fail(`fake ip: unknown command ${a}`);
  save();
}

function wgSet(l) {
  for (let i = 2; i < args.length; i++) {
    const k = args[i];
    if (k === 'private-key') l.keyDigest = digest(args[++i]);
    else if (k === 'listen-port') l.port = Number(args[++i]);
    else if (k === 'peer') {
      const key = args[++i];
      l.peers = l.peers.filter((p) => p !== key);
      if (args[i + 1] === 'remove') i++;
      else l.peers.push(key);
    } else if (k === 'preshared-key') {
      const p = args[++i];
      if (p !== '/dev/null') l.pskDigest = digest(p);
    } else if (['endpoint', 'persistent-keepalive', 'allowed-ips'].includes(k)) i++;
    else fail(`fake wg: unknown option ${k}`);
  }
}

function digest(path) {
  return createHash('sha256').update(readFileSync(path, 'utf8').trim()).digest('hex');
}

function wg() {
  const l = find(args[1]) ?? fail(`Unable to access interface: No such device`);
  if (args[0] === 'show' && args[2] === 'peers') process.stdout.write(l.peers.join('\n'));
  else if (args[0] === 'set') wgSet(l);
  else fail(`fake wg: unknown command ${args.join(' ')}`);
  save();
}

if (tool === 'ip') ip();
else wg();
