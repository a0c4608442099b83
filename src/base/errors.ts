// Error classes shared by every layer. Every error limen raises has a stable
// `code` that callers match on; a user's mistake (UserError) and a bug
// (InternalError) are different types.

export abstract class LimenError extends Error {
  abstract readonly code: string;
  override get name(): string {
    return this.constructor.name;
  }
}

/** A mistake in something a person wrote or sent: it says where and what to do. */
export abstract class UserError extends LimenError {}

/** A broken invariant inside limen: a bug, never the user's fault. */
export class InternalError extends LimenError {
  readonly code = 'LIMEN_INTERNAL';
}

export function assertNever(x: never, what = 'value'): never {
  throw new InternalError(`unexpected ${what}: ${String(x)}`);
}
