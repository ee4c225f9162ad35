// The Rust worker's notification POST up to one of its steps (README.md):
// each entry of this folder is `entry(STEP)` for its step. What a step
// leaves out is replaced by the least that still answers: the body itself
// sent as the one queue message.
import { NotificationIntake } from "../../edge/build/index.js";
import { send_within } from "../../edge/src/worker_glue/send_within.mjs";
import { reply, SEND as ITEMS_TO_SEND } from "../../edge/src/worker_glue/quick_route.mjs";

// The steps, in order: each does what the one before does, and more.
export const ROUTE = 0; // the quick route's JavaScript, no wasm
export const START = 1; // and a NotificationIntake made and freed
export const ACCEPT = 2; // and the body parsed, checked and encoded by `accept`
export const SEND = 3; // and the intake's messages sent, its outcome and answer taken

// The Rust worker's deadline for the send is the answer's budget left
// (`edge/src/budget.rs`); any value of that size costs the same timer.
const DEADLINE_MS = 2500;
// Read once, as the worker's entry does: the exported class is a `Proxy`.
const start = NotificationIntake.start;

// The Worker's handler object for the steps up to `last`.
export function entry(last) {
  return {
    async fetch(request, env) {
      if (request.method !== "POST") return reply(200, "ok");
      if (last === ROUTE) return sendBody(new Uint8Array(await request.arrayBuffer()), env);
      const headers = request.headers;
      const intake = start(request.method, request.url, headers.get("content-type"), headers.get("content-length"), env);
      if (intake === undefined) return reply(500, "the intake did not take the request");
      try {
        const body = new Uint8Array(await request.arrayBuffer());
        if (last === START) return await sendBody(body, env);
        if (intake.accept(body) !== ITEMS_TO_SEND) return reply(500, "the intake did not accept the items");
        if (last === ACCEPT) return await sendBody(body, env);
        if (intake.finish(await intake.send()) !== undefined) return reply(500, "the fast path is on");
        return reply(intake.status(), intake.text());
      } finally {
        intake.free();
      }
    },
  };
}

// The body as the one queue message, raced against the deadline as the
// Rust worker sends, and the edge's answer.
async function sendBody(body, env) {
  const held = await send_within(env.NOTIFICATIONS, [body], DEADLINE_MS);
  return held ? reply(202, "accepted") : reply(500, "the queue was late");
}
