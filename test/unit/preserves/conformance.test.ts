// The official Preserves conformance suite (../shared/conformance/preserves):
// every case in samples.pr is checked against the numbered expectations of
// its Documentation annotation, and samples.bin must decode to the same value.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import {
  Annotated,
  Bytes,
  PreservesEofError,
  PreservesShortError,
  PreservesSyntaxError,
  Record,
  Sym,
  decode,
  encode,
  is,
  parse,
  strip,
  stringify,
  type Dict,
  type Value,
} from '../../../src/preserves/index.ts';
import { same } from '../../support/same.ts';

const here = dirname(fileURLToPath(import.meta.url));
const suiteDir = join(here, '../../../../shared/conformance/preserves');
const samplesText = readFileSync(join(suiteDir, 'samples.pr'), 'utf8');
const samplesBin = new Uint8Array(readFileSync(join(suiteDir, 'samples.bin')));

/** Cases whose expectations the current specification changed, with the reason. None so far. */
const specChanges = new Map<string, string>();

function show(v: Value): string {
  try {
    return stringify(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}

function label(v: Value): string {
  const r = v instanceof Annotated ? v.item : v;
  if (!(r instanceof Record) || !(r.label instanceof Sym)) throw new Error('malformed test case');
  return r.label.name;
}

function fieldsOf(v: Value): readonly Value[] {
  const r = (v instanceof Annotated ? v.item : v) as Record;
  return r.fields;
}

function bytesOf(v: Value): Uint8Array {
  const b = strip(v);
  if (!(b instanceof Bytes)) throw new Error('expected a byte string in the test case');
  return b.bytes;
}

function textOf(v: Value): string {
  const s = strip(v);
  if (typeof s !== 'string') throw new Error('expected a string in the test case');
  return s;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

const top = parse(samplesText, { annotations: true, source: 'samples.pr' });
const cases = fieldsOf(top)[0] as Value;
const caseDict = (cases instanceof Annotated ? cases.item : cases) as Dict;

function expectFailure(what: () => unknown, cls: new (...a: never[]) => Error, name: string) {
  assert.throws(what, (e: unknown) => {
    assert.ok(e instanceof cls, `${name}: expected ${cls.name}, got ${String(e)}`);
    return true;
  });
}

describe('Preserves conformance: samples.pr', () => {
  it('has test cases', () => {
    assert.ok(caseDict.size > 100, `only ${caseDict.size} cases found`);
  });

  for (const [nameValue, testCase] of caseDict) {
    const name = (strip(nameValue) as Sym).name;
    const kind = label(testCase);
    const fields = fieldsOf(testCase);
    const skip = specChanges.get(name);
    it(`${name} (${kind})`, { skip: skip ?? false }, () => {
      switch (kind) {
        case 'Test':
        case 'NondeterministicTest': {
          const binary = bytesOf(fields[0]!);
          const annotatedValue = fields[1]!;
          const stripped = strip(annotatedValue);
          // 1. decodeBinary(encodeBinary(annotatedValue)) = stripped
          assert.ok(is(decode(encode(annotatedValue)), stripped), `1: ${show(stripped)}`);
          // 2. strip(decodeBinary(binary)) = stripped
          assert.ok(is(strip(decode(binary)), stripped), '2');
          // 3. decodeBinary(binary) = annotatedValue
          assert.ok(same(decode(binary, { annotations: true }), annotatedValue), '3');
          // 4. decodeBinary(annotatedBinary(annotatedValue)) = annotatedValue
          const annotatedBinary = encode(annotatedValue, { encoding: 'annotated' });
          assert.ok(same(decode(annotatedBinary, { annotations: true }), annotatedValue), '4');
          // 5. decodeText(encodeText(stripped)) = stripped
          assert.ok(is(parse(stringify(stripped)), stripped), `5: ${stringify(stripped)}`);
          // 6. decodeText(encodeText(annotatedValue)) = annotatedValue
          const text = stringify(annotatedValue);
          assert.ok(same(parse(text, { annotations: true }), annotatedValue), `6: ${text}`);
          if (kind === 'Test') {
            // 7. annotatedBinary(annotatedValue) = binary
            assert.equal(hex(annotatedBinary), hex(binary), '7');
            // 8. looseEncodeBinary(annotatedValue) = binary
            assert.equal(hex(encode(annotatedValue, { encoding: 'loose' })), hex(binary), '8');
          }
          break;
        }
        case 'ParseError':
          expectFailure(() => parse(textOf(fields[0]!)), PreservesSyntaxError, name);
          break;
        case 'ParseShort':
          expectFailure(() => parse(textOf(fields[0]!)), PreservesShortError, name);
          break;
        case 'ParseEOF':
          expectFailure(() => parse(textOf(fields[0]!)), PreservesEofError, name);
          break;
        case 'DecodeError':
          expectFailure(() => decode(bytesOf(fields[0]!)), PreservesSyntaxError, name);
          break;
        case 'DecodeShort':
          expectFailure(() => decode(bytesOf(fields[0]!)), PreservesShortError, name);
          break;
        case 'DecodeEOF':
          expectFailure(() => decode(bytesOf(fields[0]!)), PreservesEofError, name);
          break;
        default:
          assert.fail(`unknown test case type ${kind}`);
      }
    });
  }
});

describe('Preserves conformance: samples.bin', () => {
  it('decodes to the same value as samples.pr, annotations included', () => {
    const fromBin = decode(samplesBin, { annotations: true });
    assert.ok(is(fromBin, top), 'stripped values differ');
    assert.ok(same(fromBin, top), 'annotations differ');
  });
});
