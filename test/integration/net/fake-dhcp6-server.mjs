#!/usr/bin/env node
// A minimal DHCPv6 server (RFC 8415) for what no real server sends: it answers a
// SOLICIT with an ADVERTISE and a REQUEST, RENEW, REBIND or CONFIRM with a REPLY,
// and a RELEASE with a REPLY of status Success, each carrying the client's IA_NA and
// IA_PD (same IAIDs) with the address, prefix and lifetimes it is given, and the DNS
// servers and raw domain-search bytes it is given, all built by hand. It listens on
// [::]:547 and ff02::1:2 on IF only, and prints one line per message it answers.
// Run in a network namespace of its own (tests: dhcpv6-hostile.test.ts).
//
//   node fake-dhcp6-server.mjs IF '{"address": "2001:db8::100", "prefix": "2001:db8:1::",
//     "prefixLength": 56, "preferred": 300, "valid": 600, "dns": ["2001:db8::53"],
//     "domainSearchHex": "026f6b0474657374" }'

import { Buffer } from 'node:buffer';
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';

const [ifname, json] = process.argv.slice(2);
const o = JSON.parse(json ?? '{}');
if (ifname === undefined || !isIPv6(o.address) || !isIPv6(o.prefix)) {
  process.stderr.write('usage: fake-dhcp6-server.mjs IF JSON (see the comment at the top)\n');
  process.exit(2);
}

/** 16 bytes of an IPv6 address (node:net has no such parser; this one needs no zone). */
function addr(text) {
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return Buffer.from(groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]));
}
const u32 = (n) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const option = (code, ...parts) => {
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(4);
  head.writeUInt16BE(code);
  head.writeUInt16BE(body.length, 2);
  return Buffer.concat([head, body]);
};

/** The client's options: code → their bodies, in order. */
function options(buf) {
  const out = [];
  for (let i = 0; i + 4 <= buf.length;) {
    const code = buf.readUInt16BE(i);
    const len = buf.readUInt16BE(i + 2);
    out.push({ code, body: buf.subarray(i + 4, i + 4 + len) });
    i += 4 + len;
  }
  return out;
}

// DUID-LL (type 3, hardware type 1) of a made-up MAC.
const serverId = option(2, Buffer.from([0, 3, 0, 1, 0x02, 0, 0, 0, 0x66, 0x06]));
const T1 = Math.floor(o.valid / 2);
const T2 = Math.floor((o.valid * 4) / 5);

function answer(client) {
  const parts = [];
  for (const { code, body } of client) {
    if (code === 1) parts.push(option(1, body)); // client-id, echoed
    if (code === 3 && body.length >= 4)
      parts.push(
        option(
          3,
          body.subarray(0, 4),
          u32(T1),
          u32(T2),
          option(5, addr(o.address), u32(o.preferred), u32(o.valid)),
        ),
      );
    if (code === 25 && body.length >= 4)
      parts.push(
        option(
          25,
          body.subarray(0, 4),
          u32(T1),
          u32(T2),
          option(26, u32(o.preferred), u32(o.valid), Buffer.from([o.prefixLength]), addr(o.prefix)),
        ),
      );
  }
  parts.push(serverId);
  if ((o.dns ?? []).length > 0) parts.push(option(23, ...o.dns.map(addr)));
  if (o.domainSearchHex !== undefined)
    parts.push(option(24, Buffer.from(o.domainSearchHex, 'hex')));
  return parts;
}

const NAMES = { 1: 'SOLICIT', 3: 'REQUEST', 4: 'CONFIRM', 5: 'RENEW', 6: 'REBIND', 8: 'RELEASE' };
const socket = createSocket({ type: 'udp6', reuseAddr: true });
socket.on('message', (msg, rinfo) => {
  const type = msg[0];
  const name = NAMES[type];
  if (name === undefined || msg.length < 4) return;
  const client = options(msg.subarray(4));
  const reply = type === 1 ? 2 : 7;
  const parts = answer(client);
  if (type === 8) parts.push(option(13, Buffer.from([0, 0]))); // RELEASE: status Success
  const out = Buffer.concat([Buffer.from([reply]), msg.subarray(1, 4), ...parts]);
  socket.send(out, rinfo.port, rinfo.address);
  process.stdout.write(`${name} from ${rinfo.address}: answered\n`);
});
socket.on('error', (e) => {
  process.stderr.write(`fake-dhcp6-server: ${e.message}\n`);
  process.exit(1);
});
socket.bind(547, '::', () => {
  socket.addMembership('ff02::1:2', `::%${ifname}`);
  process.stdout.write(`listening on ${ifname}\n`);
});
for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => socket.close(() => process.exit(0)));
