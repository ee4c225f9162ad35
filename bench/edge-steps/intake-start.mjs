// `js-route.mjs` and a `NotificationIntake` made from the request line and
// headers (the Rust `Intake::start`: route, headers, settings, queue
// binding), freed once answered. See README.md.
import { NotificationIntake } from "../../edge/build/index.js";
import { send_within } from "../../edge/src/worker_glue/send_within.mjs";
import { reply } from "../../edge/src/worker_glue/quick_route.mjs";

const DEADLINE_MS = 2500;
// Read once, as the worker's entry does: the exported class is a `Proxy`.
const start = NotificationIntake.start;

export default {
  async fetch(request, env) {
    if (request.method !== "POST") return reply(200, "ok");
    const headers = request.headers;
    const intake = start(request.method, request.url, headers.get("content-type"), headers.get("content-length"), env);
    if (intake === undefined) return reply(500, "the intake did not take the request");
    try {
      const body = new Uint8Array(await request.arrayBuffer());
      const held = await send_within(env.NOTIFICATIONS, [body], DEADLINE_MS);
      return held ? reply(202, "accepted") : reply(500, "the queue was late");
    } finally {
      intake.free();
    }
  },
};
