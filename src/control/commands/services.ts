// The services: `services` lists them, `service` shows one, and `start`, `stop` and
// `restart` act on one. `start` asserts `<require-service S>` in the server's facet
// (CommandDeps.required), so a service started from the CLI runs until `stop` or
// until the daemon exits; the configuration's own requirements are never touched.
//
// A new command goes in a file of its own beside this one, with its line in index.ts
// (handler.ts says what else it needs).

import { P } from '../../dataspace/index.ts';
import { compare, record, type Value } from '../../preserves/index.ts';
import { ControlRequestError } from '../errors.ts';
import { ErrorReason, dictOf, encodeServiceDetail, encodeServiceInfo } from '../protocol.ts';
import { command, label, onlyArgument } from './handler.ts';

export const services = command({
  name: 'services',
  handle(ctx, deps) {
    ctx.args.done();
    return [...deps.options.services.list()]
      .sort((a, b) => compare(a.service, b.service))
      .map(encodeServiceInfo);
  },
});

export const service = command({
  name: 'service',
  handle(ctx, deps): Value {
    const service = onlyArgument(ctx, 'service');
    const detail = deps.options.services.detail(service);
    if (detail === undefined) {
      throw new ControlRequestError(ErrorReason.NotFound, `unknown service ${label(service)}`);
    }
    let outputs = detail.outputs;
    if (outputs === undefined) {
      const pattern = P.rec('output', P.lit(service), P.bind('key'), P.bind('value'));
      outputs = deps
        .ref('config')
        .dataspace.query(pattern)
        .map((m) => [m.captures.get('key')!, m.captures.get('value')!] as const)
        .sort((a, b) => compare(a[0], b[0]));
    }
    return encodeServiceDetail({ ...detail, outputs });
  },
});

export const start = command({
  name: 'start',
  handle(ctx, deps): Value {
    const service = onlyArgument(ctx, 'service');
    const { facet, required } = deps;
    const already = required.has(service);
    if (!already) {
      facet.turn(() => {
        required.set(service, facet.assert(deps.ref('config'), record('require-service', service)));
      });
    }
    return dictOf({ service, required: true, already });
  },
});

export const stop = command({
  name: 'stop',
  handle(ctx, deps): Value {
    const service = onlyArgument(ctx, 'service');
    const { facet, required } = deps;
    const h = required.get(service);
    if (h !== undefined) {
      required.delete(service);
      facet.turn(() => facet.retract(h));
    }
    if (deps.ref('config').dataspace.has(record('require-service', service))) {
      throw new ControlRequestError(
        ErrorReason.StillRequired,
        `${label(service)} is still required by the configuration ` +
          `(<require-service ${label(service)}> is asserted there), so it keeps running; ` +
          `change the configuration to stop it`,
      );
    }
    return dictOf({ service, required: false, wasRequired: h !== undefined });
  },
});

export const restart = command({
  name: 'restart',
  handle(ctx, deps): Value {
    const service = onlyArgument(ctx, 'service');
    deps.facet.turn(() => deps.facet.send(deps.ref('config'), record('restart-service', service)));
    return dictOf({ service });
  },
});
