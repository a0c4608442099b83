// `settings-list`, `settings-set` and `settings-unset`: the user settings store
// (CommandOptions.settings). A value that cannot be a setting is refused with every
// reason (invalid-setting).
//
// A new command goes in a file of its own beside this one, with its line in index.ts
// (handler.ts says what else it needs).

import { ControlRequestError } from '../errors.ts';
import { ErrorReason, dictOf, encodeSettingsAnswer } from '../protocol.ts';
import { command, label, onlyArgument } from './handler.ts';

export const settingsList = command({
  name: 'settings-list',
  async handle(ctx, deps) {
    ctx.args.done();
    return encodeSettingsAnswer(await deps.options.settings.list({ signal: ctx.signal }));
  },
});

export const settingsSet = command({
  name: 'settings-set',
  async handle(ctx, deps) {
    const value = onlyArgument(ctx, 'value');
    const r = await deps.options.settings.set(value, { signal: ctx.signal });
    return dictOf({ value, file: r.file, changed: r.changed });
  },
});

export const settingsUnset = command({
  name: 'settings-unset',
  async handle(ctx, deps) {
    const value = onlyArgument(ctx, 'value');
    const r = await deps.options.settings.unset(value, { signal: ctx.signal });
    if (!r.removed) {
      throw new ControlRequestError(ErrorReason.NotFound, `not a stored setting: ${label(value)}`);
    }
    return dictOf({ value, file: r.file, removed: true });
  },
});
