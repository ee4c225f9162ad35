// The quick route's JavaScript with no call into the wasm: the body read as
// bytes, sent as one message by `send_within` (the queue send raced against
// the deadline, as the Rust worker sends), and the edge's plain-text reply.
// See README.md.
import { send_within } from "../../edge/src/worker_glue/send_within.mjs";
import { reply } from "../../edge/src/worker_glue/quick_route.mjs";

// The Rust worker's deadline for the send is the answer's budget left
// (`edge/src/budget.rs`); any value of that size costs the same timer.
const DEADLINE_MS = 2500;

export default {
  async fetch(request, env) {
    if (request.method !== "POST") return reply(200, "ok");
    const body = new Uint8Array(await request.arrayBuffer());
    const held = await send_within(env.NOTIFICATIONS, [body], DEADLINE_MS);
    return held ? reply(202, "accepted") : reply(500, "the queue was late");
  },
};
