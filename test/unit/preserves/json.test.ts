// The JSON mapping of docs/json-mapping.md: the exact JSON for every kind, the way
// back, losslessness through JSON text, and errors (with code and path) for bad input.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  Annotated,
  Bytes,
  Dict,
  Double,
  Embedded,
  JsonMappingError,
  JsonSyntaxError,
  PSet,
  Record,
  dict,
  fromJSON,
  fromJSONText,
  is,
  record,
  sym,
  toJSON,
  toJSONText,
  type Value,
} from '../../../src/preserves/index.ts';

/** toJSON gives exactly `json`, and the value survives a trip through JSON text. */
function maps(v: Value, json: unknown): void {
  assert.deepEqual(toJSON(v), json);
  const back = fromJSON(JSON.parse(JSON.stringify(json)) as unknown);
  assert.ok(is(back, v), `${JSON.stringify(json)} read back differently`);
}

function mappingError(j: unknown, path: string, message?: RegExp): void {
  assert.throws(
    () => fromJSON(j),
    (e: unknown) => {
      assert.ok(e instanceof JsonMappingError, String(e));
      assert.equal(e.code, 'LIMEN_JSON_MAPPING');
      assert.equal(e.path, path, e.message);
      assert.ok(e.message.startsWith(`${path}: `));
      if (message) assert.match(e.message, message);
      return true;
    },
  );
}

describe('json: each kind', () => {
  it('keeps booleans, strings, safe integers and sequences native', () => {
    maps(true, true);
    maps(false, false);
    maps('', '');
    maps('eth0 \u6c34 \uD834\uDD1E', 'eth0 \u6c34 \uD834\uDD1E');
    maps(0, 0);
    maps(-42, -42);
    maps(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    maps(Number.MIN_SAFE_INTEGER, Number.MIN_SAFE_INTEGER);
    maps(12n, 12); // a bigint in the safe range is just an integer
    maps([], []);
    maps([1, ['a', [true]]], [1, ['a', [true]]]);
  });

  it('tags integers outside the safe range', () => {
    maps(2n ** 53n, { '@int': '9007199254740992' });
    maps(-(2n ** 100n), { '@int': '-1267650600228229401496703205376' });
    assert.deepEqual(toJSON(2 ** 60), { '@int': '1152921504606846976' });
  });

  it('tags doubles so that 1.0 stays a double', () => {
    maps(new Double(1), { '@double': 1 });
    maps(new Double(-2.5e-300), { '@double': -2.5e-300 });
    maps(new Double(0), { '@double': 0 });
    maps(new Double(-0), { '@double': '-0.0' });
    maps(new Double(Infinity), { '@double': 'Infinity' });
    maps(new Double(-Infinity), { '@double': '-Infinity' });
    maps(new Double(NaN), { '@double': 'NaN' });
    const odd = Double.fromBits(0xfff0000000000001n);
    maps(odd, { '@double': '#xd"fff0000000000001"' });
    assert.equal((fromJSON({ '@double': '#xd"FFF0000000000001"' }) as Double).bits(), odd.bits());
    assert.ok(Object.is((fromJSON({ '@double': '-0.0' }) as Double).value, -0));
  });

  it('maps the symbol null to null and tags other symbols', () => {
    maps(sym('null'), null);
    maps(sym('up'), { '@sym': 'up' });
    maps(sym(''), { '@sym': '' });
    maps(sym('@odd name'), { '@sym': '@odd name' });
  });

  it('tags records, sets, byte strings and embeddeds', () => {
    maps(record('up', sym('eth0')), { '@rec': [{ '@sym': 'up' }, { '@sym': 'eth0' }] });
    maps(new Record('label', []), { '@rec': ['label'] });
    maps(new Record([1], [record('x')]), { '@rec': [[1], { '@rec': [{ '@sym': 'x' }] }] });
    maps(new PSet([3, 'a', 1, sym('z')]), { '@set': [1, 3, 'a', { '@sym': 'z' }] });
    maps(new PSet(), { '@set': [] });
    maps(Bytes.fromLatin1('hi'), { '@bytes': 'aGk=' });
    maps(new Bytes(new Uint8Array([0, 255, 254])), { '@bytes': 'AP/+' });
    maps(new Bytes(new Uint8Array(0)), { '@bytes': '' });
    maps(new Embedded('ds'), { '@embedded': 'ds' });
    maps(new Embedded(record('ref', 1)), { '@embedded': { '@rec': [{ '@sym': 'ref' }, 1] } });
  });

  it('writes an embedded reference that is not a value as a string, one way', () => {
    const ref = { toString: () => '<dataspace 7>' };
    assert.deepEqual(toJSON(new Embedded(ref)), { '@embedded': '<dataspace 7>' });
  });

  it('writes symbol-keyed dictionaries as plain objects, in key order', () => {
    const v = dict({ service: record('daemon', 'x'), stream: sym('stdout'), line: 'hello' });
    maps(v, {
      line: 'hello',
      service: { '@rec': [{ '@sym': 'daemon' }, 'x'] },
      stream: { '@sym': 'stdout' },
    });
    assert.deepEqual(Object.keys(toJSON(v) as object), ['line', 'service', 'stream']);
    maps(new Dict(), {});
    maps(dict({ '@a': 1, '@b': 2 }), { '@a': 1, '@b': 2 });
    maps(dict({ a: dict({ b: sym('null') }) }), { a: { b: null } });
  });

  it('keeps a "__proto__" key an ordinary key', () => {
    const v = dict({ ['__proto__']: 1 });
    const j = toJSON(v) as { [k: string]: unknown };
    assert.deepEqual(Object.keys(j), ['__proto__']);
    assert.equal(JSON.stringify(j), '{"__proto__":1}');
    assert.ok(is(fromJSONText('{"__proto__": 1}'), v));
  });

  it('uses the general form for a lone "@" key and for other keys', () => {
    maps(dict({ '@x': 1 }), { '@dict': [[{ '@sym': '@x' }, 1]] });
    maps(
      new Dict([
        [2, 'two'],
        ['b', sym('b')],
        [1, 'one'],
      ] as [Value, Value][]),
      {
        '@dict': [
          [1, 'one'],
          [2, 'two'],
          ['b', { '@sym': 'b' }],
        ],
      },
    );
    maps(
      new Dict([
        [sym('a'), 1],
        ['a', 2],
      ]),
      {
        '@dict': [
          ['a', 2],
          [{ '@sym': 'a' }, 1],
        ],
      },
    );
  });

  it('drops annotations', () => {
    const v = new Annotated(record('r', new Annotated(1, ['one'])), ['note']);
    assert.deepEqual(toJSON(v), { '@rec': [{ '@sym': 'r' }, 1] });
    assert.deepEqual(toJSON(new Dict([[new Annotated(sym('k'), [1]), 2]])), { k: 2 });
  });
});

describe('json: reading', () => {
  it('reads non-integral numbers as doubles and integral ones as integers', () => {
    assert.ok(is(fromJSON(1.5), new Double(1.5)));
    assert.ok(is(fromJSONText('2.0'), 2));
    assert.ok(is(fromJSONText('1e3'), 1000));
    assert.ok(is(fromJSONText('1.25e1'), new Double(12.5)));
    assert.equal(fromJSON(-0), 0);
    assert.ok(Object.is(fromJSON(-0), 0));
  });

  it('accepts the lenient spellings the documentation promises', () => {
    assert.equal(fromJSON({ '@int': '+17' }), 17);
    assert.equal(fromJSON({ '@int': '-0' }), 0);
    assert.equal(fromJSON({ '@int': 5 }), 5);
    assert.ok(is(fromJSON({ '@bytes': 'aGk' }), Bytes.fromLatin1('hi')));
  });

  it('reads JSON text and writes it with optional indentation', () => {
    const v = dict({ a: [1, new Double(2)] });
    assert.equal(toJSONText(v), '{"a":[1,{"@double":2}]}');
    assert.equal(toJSONText(v, 2), '{\n  "a": [\n    1,\n    {\n      "@double": 2\n    }\n  ]\n}');
    assert.ok(is(fromJSONText(toJSONText(v, 2)), v));
  });

  it('round-trips a realistic assertion', () => {
    const v = record(
      'log',
      new Double(1732291200.25),
      dict({
        service: record('daemon', sym('udhcpc')),
        stream: sym('stdout'),
        line: 'lease 100.64.0.7',
        fields: new Dict([
          [1, new PSet([Bytes.fromLatin1('\x00'), sym('null')])],
          [sym('@only'), 2n ** 64n],
        ] as [Value, Value][]),
      }),
    );
    assert.ok(is(fromJSONText(toJSONText(v)), v));
  });
});

describe('json: errors', () => {
  it('rejects unknown tags with the place and a hint', () => {
    mappingError({ '@symbol': 'x' }, '$["@symbol"]', /unknown tag "@symbol".*@dict/);
    mappingError({ a: [0, { '@rec': [{ '@sy': 'x' }] }] }, '$.a[1]["@rec"][0]["@sy"]');
  });

  it('rejects malformed tag payloads', () => {
    mappingError({ '@int': '12a' }, '$["@int"]', /decimal digits/);
    mappingError({ '@int': 1.5 }, '$["@int"]');
    mappingError({ '@double': 'inf' }, '$["@double"]', /Infinity/);
    mappingError({ '@double': '#xd"123"' }, '$["@double"]');
    mappingError({ '@double': null }, '$["@double"]');
    mappingError({ '@sym': 3 }, '$["@sym"]', /as a string/);
    mappingError({ '@rec': [] }, '$["@rec"]', /label/);
    mappingError({ '@rec': 'x' }, '$["@rec"]');
    mappingError({ '@set': {} }, '$["@set"]');
    mappingError({ '@bytes': 'a' }, '$["@bytes"]', /base64/);
    mappingError({ '@bytes': 'aGk=x' }, '$["@bytes"]');
    mappingError({ '@bytes': 'a-_b' }, '$["@bytes"]');
    mappingError({ '@bytes': 'aG=' }, '$["@bytes"]');
    mappingError({ '@dict': [[1]] }, '$["@dict"][0]', /pair/);
    mappingError({ '@dict': {} }, '$["@dict"]');
  });

  it('rejects duplicates in sets and dictionaries', () => {
    mappingError({ '@set': [1, 2, 1] }, '$["@set"][2]', /duplicate set element/);
    mappingError({ '@set': [{ '@double': 1 }, 1, { '@double': 1 }] }, '$["@set"][2]');
    mappingError(
      {
        '@dict': [
          [1, 'a'],
          [1, 'b'],
        ],
      },
      '$["@dict"][1][0]',
      /duplicate/,
    );
  });

  it('rejects integers that JSON may already have rounded', () => {
    mappingError({ n: 2 ** 53 }, '$.n', /@int/);
    mappingError(1e300, '$');
  });

  it('rejects values that are not JSON', () => {
    mappingError(undefined, '$', /undefined is not a JSON value/);
    mappingError([() => 1], '$[0]');
    mappingError({ a: 1n }, '$.a');
    mappingError(new Date(0), '$', /plain object/);
    mappingError(sym('x'), '$');
  });

  it('rejects lone surrogates', () => {
    mappingError(JSON.parse('["\\ud800"]'), '$[0]', /surrogate/);
    mappingError(JSON.parse('{"\\udc00": 1}'), '$["\\udc00"]');
    mappingError({ '@sym': '\ud800' }, '$["@sym"]');
  });

  it('rejects nesting beyond the limit', () => {
    let j: unknown = 1;
    for (let i = 0; i < 600; i++) j = [j];
    assert.throws(() => fromJSON(j), JsonMappingError);
    assert.ok(Array.isArray(fromJSON(j, { maxDepth: 1000 })));
  });

  it('reports text that is not JSON as a syntax error', () => {
    assert.throws(
      () => fromJSONText('{"a": '),
      (e: unknown) => e instanceof JsonSyntaxError && e.code === 'LIMEN_JSON_SYNTAX',
    );
  });
});
