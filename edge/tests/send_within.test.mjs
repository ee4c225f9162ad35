// The edge's queue send and its deadline (edge/src/worker_glue/send_within.mjs),
// under Node's test runner (`make test`). The queue here is a stand-in: the
// local Queue under `wrangler dev` always answers, so a send that outlives its
// deadline, or one the queue refuses, cannot be produced with it. The e2e
// tests drive the same function against the real local Queue.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { send_within } from "../src/worker_glue/send_within.mjs";

/** A queue binding whose `sendBatch` records its batches and answers with `answer()`. */
function queue(answer) {
  const batches = [];
  return {
    batches,
    sendBatch(messages) {
      batches.push(messages);
      return answer();
    },
  };
}

const never = () => new Promise(() => {});
const timers = { set: 0, cleared: 0 };
const { setTimeout: realSet, clearTimeout: realClear } = globalThis;
globalThis.setTimeout = (...args) => (timers.set++, realSet(...args));
globalThis.clearTimeout = (id) => (timers.cleared++, realClear(id));

afterEach(() => {
  timers.set = timers.cleared = 0;
});

test("a batch the queue takes in time resolves true, in one sendBatch of structured-clone messages", async () => {
  const bodies = [new Uint8Array([1, 2]), new Uint8Array([3])];
  const accepting = queue(() => Promise.resolve());
  assert.equal(await send_within(accepting, bodies, 60_000), true);
  assert.deepEqual(accepting.batches, [
    [
      { body: bodies[0], contentType: "v8" },
      { body: bodies[1], contentType: "v8" },
    ],
  ]);
  assert.deepEqual(timers, { set: 1, cleared: 1 }, "the deadline's timer is released once the batch is held");
});

test("a queue that does not answer before the deadline resolves false", async () => {
  const silent = queue(never);
  assert.equal(await send_within(silent, [new Uint8Array([1])], 5), false);
  assert.equal(silent.batches.length, 1);
});

test("a queue that refuses the batch rejects with its error", async () => {
  const refusing = queue(() => Promise.reject(new Error("Queue send failed: too large")));
  await assert.rejects(send_within(refusing, [new Uint8Array([1])], 60_000), /too large/);
  assert.deepEqual(timers, { set: 1, cleared: 1 }, "the deadline's timer is released on a refusal");
});

test("a batch refused before it is sent throws at once and starts no timer", () => {
  const throwing = {
    sendBatch() {
      throw new TypeError("a message body could not be serialised");
    },
  };
  assert.throws(() => send_within(throwing, [new Uint8Array([1])], 60_000), /could not be serialised/);
  assert.deepEqual(timers, { set: 0, cleared: 0 });
});
