// Output for people: aligned tables and key/value lists, with colour only when the
// Io allows it (a TTY, NO_COLOR unset). Widths are measured on the plain text, so
// colour codes never break alignment.

import type { Io } from './io.ts';

const ESC = '\u001b[';

/** Colour is used when the Io says so and NO_COLOR is not set (to anything non-empty). */
export function colorEnabled(io: Io): boolean {
  const no = io.env['NO_COLOR'];
  return io.color && (no === undefined || no === '');
}

export type Tint = 'green' | 'yellow' | 'red' | 'dim' | 'bold';

const codes: { readonly [t in Tint]: string } = {
  green: '32',
  yellow: '33',
  red: '31',
  dim: '2',
  bold: '1',
};

export function paint(text: string, tint: Tint | undefined, color: boolean): string {
  if (!color || tint === undefined || text === '') return text;
  return `${ESC}${codes[tint]}m${text}${ESC}0m`;
}

/** The colour of a service or process state. */
export function stateTint(state: string): Tint | undefined {
  switch (state) {
    case 'ready':
    case 'complete':
    case 'up':
      return 'green';
    case 'failed':
    case 'invalid':
      return 'red';
    case 'started':
    case 'starting':
    case 'stopping':
    case 'restarting':
    case 'waiting':
      return 'yellow';
    default:
      return undefined;
  }
}

function width(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

export interface TableOptions {
  readonly color: boolean;
  /** A tint per cell (column index, plain text), e.g. to colour a state column. */
  readonly tint?: (column: number, text: string) => Tint | undefined;
}

/** An aligned table with a header row; the last column is not padded. */
export function renderTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  options: TableOptions,
): string {
  const widths = headers.map((h, i) => Math.max(width(h), ...rows.map((r) => width(r[i] ?? ''))));
  const line = (cells: readonly string[], header: boolean): string =>
    cells
      .map((c, i) => {
        const last = i === cells.length - 1;
        const pad = last ? '' : ' '.repeat(widths[i]! - width(c));
        const tint = header ? 'bold' : options.tint?.(i, c);
        return paint(c, tint, options.color) + pad;
      })
      .join('  ')
      .trimEnd();
  return [line(headers, true), ...rows.map((r) => line(r, false))].join('\n') + '\n';
}

/** `key  value` lines, keys aligned; a value's further lines are indented under its first. */
export function renderFields(
  fields: readonly (readonly [string, string])[],
  options: TableOptions,
): string {
  const w = Math.max(0, ...fields.map(([k]) => width(k)));
  return (
    fields
      .map(([k, v], i) => {
        const tint = options.tint?.(i, v);
        const value = v.split('\n').join(`\n${' '.repeat(w + 2)}`);
        return `${paint(k, 'bold', options.color)}${' '.repeat(w - width(k))}  ${paint(value, tint, options.color)}`;
      })
      .join('\n') + (fields.length > 0 ? '\n' : '')
  );
}
