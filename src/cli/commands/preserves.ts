// `limen preserves convert`: converts Preserves between text, binary, hex and
// JSON on standard input/output, like preserves-tool. Errors name the position.

import { parseArgs, oneOf } from '../args.ts';
import type { Command } from '../command.ts';
import { ExitCode, readAll, type Io } from '../io.ts';
import {
  PreservesReadError,
  encode,
  fromJSONText,
  parseAll,
  stringify,
  toJSONText,
  BinaryDecoder,
  type Value,
} from '../../preserves/index.ts';
import { UserError } from '../../base/errors.ts';

const inputs = ['text', 'binary', 'json', 'auto'] as const;
const outputs = ['text', 'binary', 'canonical', 'hex', 'json'] as const;

function readValues(data: Buffer, from: (typeof inputs)[number]): Value[] {
  if (from === 'auto') {
    // Binary Preserves starts with a tag byte >= 0x80; text and JSON never do.
    from = data.length > 0 && data[0]! >= 0x80 ? 'binary' : 'text';
  }
  switch (from) {
    case 'text':
      return parseAll(data.toString('utf8'), { source: '<stdin>', annotations: true });
    case 'binary': {
      const d = new BinaryDecoder(new Uint8Array(data), { source: '<stdin>', annotations: true });
      const out: Value[] = [];
      for (let v = d.next(); v !== undefined; v = d.next()) out.push(v);
      return out;
    }
    case 'json': {
      const text = data.toString('utf8').trim();
      return text === '' ? [] : [fromJSONText(text)];
    }
  }
}

export const convertCommand: Command = {
  path: ['preserves', 'convert'],
  summary: 'convert Preserves between text, binary and JSON (stdin to stdout)',
  usage:
    'limen preserves convert [--from text|binary|json|auto] [--to text|binary|canonical|hex|json] [--indent]',
  help: `Reads values from standard input and writes them to standard output.

Options:
  --from FORMAT   text, binary, json, or auto (default: auto-detect text or binary)
  --to FORMAT     text (default), binary (annotations kept), canonical (binary,
                  canonical form), hex (canonical, as hex), json
  --indent        indented text or JSON for people

Examples:
  echo '<interface "eth0" 2>' | limen preserves convert --to hex
  limen preserves convert --from binary --to text --indent < state.bin
  echo '{a: 1}' | limen preserves convert --to json`,
  async run(argv: readonly string[], io: Io): Promise<number> {
    const args = parseArgs(argv, {
      from: { type: 'string' },
      to: { type: 'string' },
      indent: { type: 'boolean' },
    });
    if (args.positionals.length > 0) {
      io.err(`limen preserves convert: unexpected argument '${args.positionals[0]}'\n`);
      return ExitCode.Usage;
    }
    const from = oneOf(args.options.get('from'), inputs, 'from', 'auto');
    const to = oneOf(args.options.get('to'), outputs, 'to', 'text');
    const indent = args.options.get('indent') === true;
    let values: Value[];
    try {
      values = readValues(await readAll(io.stdin), from);
    } catch (e) {
      if (e instanceof PreservesReadError || e instanceof UserError) {
        io.err(`limen preserves convert: ${e.message}\n`);
        return ExitCode.Failed;
      }
      throw e;
    }
    for (const v of values) {
      switch (to) {
        case 'text':
          io.out(stringify(v, { indent }) + '\n');
          break;
        case 'binary':
          io.outBytes(encode(v, { encoding: 'annotated' }));
          break;
        case 'canonical':
          io.outBytes(encode(v));
          break;
        case 'hex':
          io.out(Buffer.from(encode(v)).toString('hex') + '\n');
          break;
        case 'json':
          io.out(toJSONText(v, indent ? 2 : undefined) + '\n');
          break;
      }
    }
    return ExitCode.Ok;
  },
};
