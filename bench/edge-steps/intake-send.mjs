// `intake-accept.mjs` with the intake's own messages sent (`send`: out of
// the wasm into `send_within`), its outcome taken (`finish`) and its answer
// read (`status`, `text`): the Rust worker's quick route less the entry's
// wrapper around these calls (`quick_route.mjs`). See README.md.
import { NotificationIntake } from "../../edge/build/index.js";
import { reply } from "../../edge/src/worker_glue/quick_route.mjs";

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
      if (intake.finish(await intake.send()) !== undefined) return reply(500, "the fast path is on");
      return reply(intake.status(), intake.text());
    } finally {
      intake.free();
    }
  },
};
