// `query`: the assertions of a dataspace that match a pattern, now, sorted, with the
// pattern's captures. An answer is bounded twice before it is built: in matches
// (maxQueryMatches) and in bytes (every match must fit one message before the sort,
// whose comparisons cost up to the values' size).
//
// A new command goes in a file of its own beside this one, with its line in index.ts
// (handler.ts says what else it needs).

import {
  captureNames,
  compilePattern,
  PatternError,
  UnboundVariableError,
  type Pattern,
} from '../../dataspace/index.ts';
import { compare, type Value } from '../../preserves/index.ts';
import { ControlRequestError, MessageTooLargeError, formatBytes } from '../errors.ts';
import {
  ErrorReason,
  QUERY_MATCH_LEVELS,
  encodeQueryAnswer,
  encodeQueryMatch,
  writeValueWithin,
  type MessageLimits,
  type QueryMatch,
} from '../protocol.ts';
import { command, label, type RequestContext } from './handler.ts';

/** Matches one query may answer. */
export const DEFAULT_MAX_QUERY_MATCHES = 20_000;

const HINT =
  'narrow the pattern (constants in place of _ or ?x) so that fewer or smaller assertions match';

/** The request's `pattern`, compiled; undefined (and a problem noted) if it is not one. */
export function readPattern(ctx: RequestContext): Pattern | undefined {
  const value = ctx.args.value('pattern', true);
  try {
    return compilePattern(value);
  } catch (e) {
    if (e instanceof PatternError || e instanceof UnboundVariableError) {
      ctx.args.problem(`bad pattern: ${e.message}`);
      return undefined;
    }
    throw e;
  }
}

export const query = command({
  name: 'query',
  tooLargeHint: HINT,
  handle(ctx, deps): Value {
    const ref = deps.ref(ctx.args.dataspace());
    const pattern = readPattern(ctx);
    ctx.args.done();
    const names = captureNames(pattern!);
    const max = deps.options.maxQueryMatches ?? DEFAULT_MAX_QUERY_MATCHES;
    const found = ref.dataspace.query(pattern!, max + 1);
    if (found.length > max) {
      throw new ControlRequestError(
        ErrorReason.TooLarge,
        `more than ${max} assertions match, and a query answers at most ${max}; ${HINT}`,
      );
    }
    const matches = found.map((m) => ({ value: m.value, captures: [...m.captures] }));
    checkMatchesFit(matches, deps.limits);
    matches.sort((a, b) => compare(a.value, b.value));
    return encodeQueryAnswer({ names, matches });
  },
});

/**
 * Throws a too-large ControlRequestError unless every match fits in one answer. The
 * text is written again, within the same limits, when the answer is sent.
 */
function checkMatchesFit(matches: readonly QueryMatch[], limits: MessageLimits): void {
  let budget = limits.maxBytes;
  for (let i = 0; i < matches.length; i++) {
    const m = matches[i]!;
    try {
      budget -=
        Buffer.byteLength(
          writeValueWithin(encodeQueryMatch(m), {
            maxBytes: budget,
            maxDepth: limits.maxDepth - QUERY_MATCH_LEVELS,
          }),
        ) + 1;
    } catch (e) {
      if (!(e instanceof MessageTooLargeError)) throw e;
      const message =
        e.limit === 'depth'
          ? `a matching assertion is nested too deeply to be sent (an answer nests at most ` +
            `${limits.maxDepth} levels, Preserves' own limit, ${QUERY_MATCH_LEVELS + 1} ` +
            `of them around each value): ${label(m.value)}`
          : `the answer would be larger than ${formatBytes(limits.maxBytes)}, the limit ` +
            `for one answer (the first ${i} of the ${matches.length} matches already take ` +
            `${limits.maxBytes - budget} bytes)`;
      throw new ControlRequestError(ErrorReason.TooLarge, `${message}; ${HINT}`);
    }
  }
}
