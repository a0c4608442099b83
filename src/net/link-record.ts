// The outer shape every virtual link's assertion shares, `<KIND NAME {OPTIONS}>`
// (`<vlan "wan0.7" {…}>`, `<wireguard "wg0" {…}>`): NAME checked as an interface
// name, the options handed on to the kind's reader (SpecOptions), every problem
// collected.

import { Dict, Record, peel, showValue, type Value } from '../preserves/index.ts';
import { interfaceNameProblem } from '../base/interface-name.ts';
import { SpecOptions } from './spec-options.ts';

/** A link's spec, or every problem with its assertion (NAME as asserted, for the error record). */
export type ReadLink<T> =
  | { readonly ok: true; readonly spec: T }
  | { readonly ok: false; readonly name: Value; readonly problems: readonly string[] };

/** `<KIND NAME {…}>` taken apart: the name (if valid) and a reader of the options. */
export function readLinkRecord(
  value: Value,
  usage: string,
  known: readonly string[],
  problems: string[],
): { name: string | undefined; nameValue: Value; options: SpecOptions } {
  const r = peel(value);
  const fields = r instanceof Record ? r.fields : [];
  if (fields.length !== 2) problems.push(`expected ${usage} (2 fields), got ${fields.length}`);
  const nameValue = fields[0] ?? false;
  const raw = peel(nameValue);
  let name: string | undefined;
  if (typeof raw !== 'string')
    problems.push(`NAME must be a string, not ${showValue(nameValue, 40)}`);
  else {
    const p = interfaceNameProblem(raw);
    if (p === undefined) name = raw;
    else problems.push(`the name ${showValue(raw, 40)} ${p}`);
  }
  return { name, nameValue, options: new SpecOptions(fields[1] ?? new Dict(), known, problems) };
}
