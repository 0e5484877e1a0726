// The protobuf codec of the peer link is transparent to the core: every
// message the cores send in these runs comes out of encodePeer/decodePeer
// equal to what went in, and runs whose
// every message goes through encodePeer/decodePeer (the newest protocol minor) are the
// same, event for event, as runs with the core's own objects. A field the
// codec dropped, renamed, rounded or defaulted differently would change some
// seed's trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Message } from '../../src/core/types';
import { decodePeer, encodePeer } from '../../src/transport/peer-codec';
import { PROTOCOL_MINOR } from '../../src/transport/schema';
import { runSeed } from './run-seed';

const SEEDS = Number(process.env.KOI_SIM_WIRE_SEEDS ?? 60);

test(`${SEEDS} seeds through the wire codec give the same trace as without it`, () => {
  let checked = 0;
  for (let seed = 1; seed <= SEEDS; seed++) {
    const plain = runSeed(seed);
    // `names`: the seed's nodes, as [cluster] transport would list them.
    const wire = (m: Message, known: ReadonlySet<string>): Message => {
      const p = decodePeer(encodePeer({ type: 'msg', msg: m }, PROTOCOL_MINOR), known);
      assert.equal(p.type, 'msg');
      const back = (p as { msg: Message }).msg;
      // The codec is the identity on everything the core sends.
      assert.deepEqual(back, m, `seed ${seed}: a ${m.kind} changed on the wire`);
      return back;
    };
    const coded = runSeed(seed, { wire });
    assert.deepEqual(coded.violations, plain.violations, `seed ${seed}: violations`);
    assert.deepEqual(coded.trace, plain.trace, `seed ${seed}: trace`);
    checked++;
  }
  assert.equal(checked, SEEDS);
});
