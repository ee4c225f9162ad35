// The quick route of a notification POST, driven from JavaScript (see
// `entry.mjs` for why): the body read and the queue send awaited here,
// every decision taken by synchronous calls into the Rust `NotificationIntake`
// (`intake.rs`, over the plain-Rust `crate::intake`). Kept apart from the
// entry so that Node's test runner can drive it with a stand-in intake
// (`edge/tests/quick_route.test.mjs`); the e2e tests drive it in workerd.

// NotificationIntake.accept's verdicts (as `intake.rs` numbers them).
const ANSWER = 0;
export const SEND = 1;
const VERIFY = 3;

// Answers `request`: `start` is `NotificationIntake.start`; `full` answers
// a request on the full route (the Rust `fetch`).
export async function quickRoute(request, env, ctx, start, full) {
  const headers = request.headers;
  const intake = start(request.method, request.url, headers.get("content-type"), headers.get("content-length"), env);
  if (intake === undefined) return full(request);
  try {
    const body = new Uint8Array(await request.arrayBuffer());
    let verdict = intake.accept(body);
    if (verdict === VERIFY) verdict = intake.verified(await settled(() => intake.verifying()));
    if (verdict === SEND) {
      const fastPath = intake.finish(await settled(() => intake.send()));
      if (fastPath !== undefined) ctx.waitUntil(fastPath);
    } else if (verdict !== ANSWER) {
      // The full route: from the parsed body when the intake kept it,
      // else with the body this request no longer has.
      return intake.full(ctx) ?? full(new Request(request.url, { method: request.method, headers, body }));
    }
    return reply(intake.status(), intake.text());
  } finally {
    intake.free();
  }
}

// What the promise `start` makes came to, or what it threw: for the queue
// send true (held), false (late) or its error; for the token signatures
// their verdicts.
async function settled(start) {
  try {
    return await start();
  } catch (error) {
    return error;
  }
}

// The edge's plain-text answer, with the headers the full route sets.
export function reply(status, text) {
  const headers = { "content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff" };
  if (status === 503) headers["retry-after"] = "10";
  return new Response(text, { status, headers });
}
