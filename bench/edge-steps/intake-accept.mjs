// `intake-start.mjs` and the body parsed, checked and encoded into queue
// messages by `NotificationIntake.accept`; the body itself is what is sent,
// so the messages' way out of the wasm is the one step left to the Rust
// worker. See README.md.
import { NotificationIntake } from "../../edge/build/index.js";
import { send_within } from "../../edge/src/worker_glue/send_within.mjs";
import { reply } from "../../edge/src/worker_glue/quick_route.mjs";

const DEADLINE_MS = 2500;
// `accept`'s verdict for items to send (`edge/src/worker_glue/intake.rs`).
const SEND = 1;
const start = NotificationIntake.start;

export default {
  async fetch(request, env) {
    if (request.method !== "POST") return reply(200, "ok");
    const headers = request.headers;
    const intake = start(request.method, request.url, headers.get("content-type"), headers.get("content-length"), env);
    if (intake === undefined) return reply(500, "the intake did not take the request");
    try {
      const body = new Uint8Array(await request.arrayBuffer());
      if (intake.accept(body) !== SEND) return reply(500, "the intake did not accept the items");
      const held = await send_within(env.NOTIFICATIONS, [body], DEADLINE_MS);
      return held ? reply(202, "accepted") : reply(500, "the queue was late");
    } finally {
      intake.free();
    }
  },
};
