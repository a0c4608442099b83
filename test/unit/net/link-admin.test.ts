// The link-admin driver's failures (src/net/link-admin.ts), with `ip` answered by the
// test: a failed `ip link set` is `<link-error IF M>` while the link is there, and no
// failure at all when the link went away while the command ran (pppd renames the
// ppp0 it made to its ifname at once, so bringing ppp0 up always fails that way).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse, stringify } from '../../../src/preserves/index.ts';
import { Dataspace, P, type Handle } from '../../../src/dataspace/index.ts';
import { startLinkAdmin } from '../../../src/net/link-admin.ts';
import { checkedEngine } from '../../support/engine-log.ts';

describe('link admin: failures', () => {
  it('reports a failed ip link set while the link is there, and none for a link that went away meanwhile', async (t) => {
    const { engine } = checkedEngine(t);
    const config = new Dataspace(engine, 'config');
    const machine = new Dataspace(engine, 'machine');
    /** The commands limen ran, each answered by the test. */
    const calls: { argv: readonly string[]; answer: (error: string | undefined) => void }[] = [];
    engine.turn(() =>
      startLinkAdmin(engine.root, {
        config: config.ref,
        machine: machine.ref,
        run: (argv) => new Promise((answer) => calls.push({ argv, answer })),
      }),
    );
    const appear = (name: string): Handle => {
      let h!: Handle;
      engine.turn(
        () =>
          (h = engine.root.assert(
            machine.ref,
            parse(`<interface "${name}" 9 ppp down down no-carrier #f>`),
          )),
      );
      return h;
    };
    const errors = () => config.query(P.rec('link-error', P._, P._)).map((r) => stringify(r.value));
    const answer = async (i: number, error: string | undefined) => {
      calls[i]!.answer(error);
      await engine.sync();
    };

    // pppd's ppp0, renamed to ppp-wan0 before `ip link set ppp0 up` runs.
    const ppp0 = appear('ppp0');
    await engine.sync();
    assert.deepEqual(calls[0]?.argv, ['ip', 'link', 'set', 'dev', 'ppp0', 'up']);
    engine.turn(() => engine.root.retract(ppp0));
    appear('ppp-wan0');
    await answer(0, 'Cannot find device "ppp0"');
    assert.deepEqual(errors(), [], 'no failure for a link that is gone');

    // A link that is still there and cannot be brought up is a failure.
    assert.deepEqual(calls[1]?.argv, ['ip', 'link', 'set', 'dev', 'ppp-wan0', 'up']);
    await answer(1, 'RTNETLINK answers: Operation not permitted');
    assert.deepEqual(errors(), [
      '<link-error "ppp-wan0" "RTNETLINK answers: Operation not permitted">',
    ]);
    engine.turn(() => engine.root.stop());
    await engine.sync();
  });
});
