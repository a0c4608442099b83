// A small, strict command-line parser: long options with values, boolean
// flags, and positionals. Unknown options are usage errors, never ignored.

import { UserError } from '../base/errors.ts';

export class UsageError extends UserError {
  readonly code = 'LIMEN_USAGE';
}

export interface OptionSpec {
  readonly [name: string]: { readonly type: 'string' | 'boolean'; readonly short?: string };
}

export interface ParsedArgs {
  readonly options: Map<string, string | boolean>;
  readonly positionals: string[];
}

export function parseArgs(argv: readonly string[], spec: OptionSpec): ParsedArgs {
  const options = new Map<string, string | boolean>();
  const positionals: string[] = [];
  const byShort = new Map<string, string>();
  for (const [name, s] of Object.entries(spec)) if (s.short) byShort.set(s.short, name);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    let name: string | undefined;
    let inline: string | undefined;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      inline = eq < 0 ? undefined : a.slice(eq + 1);
    } else if (a.startsWith('-') && a.length === 2 && a !== '-') {
      name = byShort.get(a.slice(1));
      if (name === undefined) throw new UsageError(`unknown option '${a}'`);
    } else {
      positionals.push(a);
      continue;
    }
    const s = spec[name];
    if (s === undefined) {
      const near = Object.keys(spec).find((k) => k.startsWith(name.slice(0, 3)));
      throw new UsageError(
        `unknown option '--${name}'${near ? ` (did you mean '--${near}'?)` : ''}`,
      );
    }
    if (s.type === 'boolean') {
      if (inline !== undefined) throw new UsageError(`option '--${name}' takes no value`);
      options.set(name, true);
    } else {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`option '--${name}' needs a value`);
      options.set(name, v);
    }
  }
  return { options, positionals };
}

export function oneOf<T extends string>(
  value: string | boolean | undefined,
  allowed: readonly T[],
  option: string,
  fallback: T,
): T {
  if (value === undefined) return fallback;
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value))
    return value as T;
  throw new UsageError(`--${option} must be one of ${allowed.join(', ')} (got '${String(value)}')`);
}
