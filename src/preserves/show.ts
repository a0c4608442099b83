// Values and text in messages for people (config errors, driver problems, logs):
// one rule everywhere, so that a value is shown the same way whoever reports it.
// Printable ASCII only (anything else becomes '?'), and at most SHOW_MAX characters
// (cut with '...'); a value is written only up to that length, however large it is.

import { stringify, type TextWriteOptions } from './text-writer.ts';
import type { Value } from './values.ts';

/** The longest a value or a piece of text is shown in a message. */
export const SHOW_MAX = 80;

/** `text` with every character outside printable ASCII as '?', cut at `max`. */
export function printable(text: string, max = SHOW_MAX): string {
  const s = text.replace(/[^\x20-\x7e]/g, '?');
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}

/** A value as Preserves text for a message (annotations dropped), cut at `max`. */
export function showValue(
  v: Value,
  max = SHOW_MAX,
  options: Pick<TextWriteOptions, 'embedded'> = {},
): string {
  return printable(
    stringify(v, { ...options, annotations: false, maxLength: max, ellipsis: '...' }),
    max,
  );
}
