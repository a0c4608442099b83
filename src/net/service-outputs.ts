// A protocol's programs hand what they learned to limen as service outputs
// (`<output SERVICE KEY VALUE>` in $config: the udhcpc script's lease, the pppd
// hook's link). followOutputs keeps a set of assertions equal to what a pure
// interpretation of the newest outputs says, replaced by a diff (a value that stays
// the same never flaps) once per burst of changes (a renew changes several keys in
// one commit). Used by the dhcp and pppoe protocols (docs/architecture.md).

import { Sym, ValueMap, is, peel, type Value } from '../preserves/index.ts';
import { P, type Facet, type Handle, type Ref } from '../dataspace/index.ts';

/**
 * While `facet` lives, asserts in `config` what `interpret` makes of SERVICE's newest
 * outputs (key → value); everything goes with the facet. Returns a function that
 * interprets again (in a later turn), for an interpretation that also reads other
 * state (dhcpv6's reading of the kernel's SLAAC address).
 */
export function followOutputs(
  facet: Facet,
  config: Ref,
  service: Value,
  interpret: (latest: ReadonlyMap<string, Value>) => readonly Value[],
  name: string,
): () => void {
  // Several values for one key can coexist for a moment (a changed output is
  // asserted before the old one is retracted); the newest wins.
  const outputs = new Map<string, Value[]>();
  const held = new ValueMap<Handle>();
  let queued = false;
  const update = (): void => {
    queued = false;
    const latest = new Map<string, Value>();
    for (const [k, vs] of outputs) if (vs.length > 0) latest.set(k, vs[vs.length - 1]!);
    const assertions = interpret(latest);
    const want = new ValueMap<true>(assertions.map((v) => [v, true] as const));
    for (const v of assertions) if (!held.has(v)) held.set(v, facet.assert(config, v));
    for (const [v, h] of [...held]) {
      if (!want.has(v)) {
        facet.retract(h);
        held.delete(v);
      }
    }
  };
  const schedule = (): void => {
    if (queued) return;
    queued = true;
    facet.turn(update);
  };
  facet.observe(
    config,
    P.rec('output', P.lit(service), P.bind('key'), P.bind('value')),
    {
      onAdd: (_v, c) => {
        const key = peel(c.get('key')!);
        if (!(key instanceof Sym)) return;
        const list = outputs.get(key.name) ?? [];
        list.push(c.get('value')!);
        outputs.set(key.name, list);
        schedule();
      },
      onRemove: (_v, c) => {
        const key = peel(c.get('key')!);
        if (!(key instanceof Sym)) return;
        const list = outputs.get(key.name);
        if (list === undefined) return;
        const value = c.get('value')!;
        const i = list.findIndex((x) => is(x, value));
        if (i >= 0) list.splice(i, 1);
        if (list.length === 0) outputs.delete(key.name);
        schedule();
      },
    },
    name,
  );
  return schedule;
}
