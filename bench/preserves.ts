// Preserves codec throughput on a realistic corpus (interface, address, route
// and lease assertions), against JSON.parse/JSON.stringify of the equivalent
// JSON in the same run. Prints MB/s and the ratio to the JSON baseline.
// Aims (issue 2): binary decode >= 0.5x JSON.parse, text parse >= 0.25x JSON.parse.

import {
  decode,
  dict,
  encode,
  parse,
  record,
  stringify,
  type Value,
} from '../src/preserves/index.ts';

const N = 12_000;

function mac(i: number): string {
  return `52:54:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
}

// Each assertion as a Preserves value and as the JSON a JSON-based system would use.
function corpus(): { values: Value[]; json: unknown[] } {
  const values: Value[] = [];
  const json: unknown[] = [];
  for (let i = 0; i < N; i++) {
    const name = `eth${i % 64}`;
    switch (i % 4) {
      case 0:
        values.push(record('interface', name, i + 2, 'normal', 'up', 'up', 'carrier', mac(i)));
        json.push({
          interface: {
            name,
            index: i + 2,
            type: 'normal',
            admin: 'up',
            oper: 'up',
            carrier: 'carrier',
            mac: mac(i),
          },
        });
        break;
      case 1:
        values.push(
          record(
            'address',
            name,
            'ipv4',
            `10.${i & 255}.${(i >> 8) & 255}.1`,
            24,
            dict({ scope: 'global', valid: 3600, preferred: 1800 }),
          ),
        );
        json.push({
          address: {
            name,
            family: 'ipv4',
            address: `10.${i & 255}.${(i >> 8) & 255}.1`,
            prefix: 24,
            scope: 'global',
            valid: 3600,
            preferred: 1800,
          },
        });
        break;
      case 2:
        values.push(
          record('route', 'ipv4', 'default', 100 + (i % 7), 'main', name, `10.${i & 255}.0.1`),
        );
        json.push({
          route: {
            family: 'ipv4',
            dest: 'default',
            priority: 100 + (i % 7),
            table: 'main',
            dev: name,
            gateway: `10.${i & 255}.0.1`,
          },
        });
        break;
      default:
        values.push(
          record(
            'output',
            record('daemon', record('udhcpc', name)),
            'lease',
            dict({
              ip: `100.64.${i & 255}.7`,
              mask: 24,
              router: '100.64.0.1',
              dns: ['100.64.0.53', '100.64.0.54'],
              lease: 3600,
              serverid: '100.64.0.1',
            }),
          ),
        );
        json.push({
          output: {
            service: { daemon: { udhcpc: name } },
            key: 'lease',
            value: {
              ip: `100.64.${i & 255}.7`,
              mask: 24,
              router: '100.64.0.1',
              dns: ['100.64.0.53', '100.64.0.54'],
              lease: 3600,
              serverid: '100.64.0.1',
            },
          },
        });
    }
  }
  return { values, json };
}

function measure(fn: () => unknown, bytes: number): number {
  for (let i = 0; i < 3; i++) fn(); // warm up
  const rates: number[] = [];
  for (let i = 0; i < 9; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    rates.push(bytes / 1e6 / secs);
  }
  rates.sort((a, b) => a - b);
  return rates[Math.floor(rates.length / 2)]!; // median MB/s
}

const { values, json } = corpus();
const whole: Value = values;
const text = stringify(whole);
const binary = encode(whole);
const jsonText = JSON.stringify(json);
const textBytes = Buffer.byteLength(text);

const jsonParse = measure(() => JSON.parse(jsonText), jsonText.length);
const jsonStringify = measure(() => JSON.stringify(json), jsonText.length);
const textParse = measure(() => parse(text), textBytes);
const binDecode = measure(() => decode(binary), binary.length);
const binEncode = measure(() => encode(whole), binary.length);
const textWrite = measure(() => stringify(whole), textBytes);

const row = (name: string, mbs: number, base: number, baseName: string) =>
  `  ${name.padEnd(22)} ${mbs.toFixed(1).padStart(8)} MB/s   ${(mbs / base).toFixed(2).padStart(5)}x ${baseName}`;

console.log(
  `corpus: ${N} records; text ${(textBytes / 1e6).toFixed(2)} MB, binary ${(binary.length / 1e6).toFixed(2)} MB, JSON ${(jsonText.length / 1e6).toFixed(2)} MB`,
);
console.log(row('JSON.parse (baseline)', jsonParse, jsonParse, 'JSON.parse'));
console.log(row('JSON.stringify (base)', jsonStringify, jsonStringify, 'JSON.stringify'));
console.log(row('binary decode', binDecode, jsonParse, 'JSON.parse     (aim >= 0.50x)'));
console.log(row('text parse', textParse, jsonParse, 'JSON.parse     (aim >= 0.25x)'));
console.log(row('binary encode', binEncode, jsonStringify, 'JSON.stringify'));
console.log(row('text write', textWrite, jsonStringify, 'JSON.stringify'));
console.log(
  `  records/s: binary decode ${((N * binDecode * 1e6) / binary.length / 1e3).toFixed(0)}k, text parse ${((N * textParse * 1e6) / textBytes / 1e3).toFixed(0)}k, JSON.parse ${((N * jsonParse * 1e6) / jsonText.length / 1e3).toFixed(0)}k`,
);
