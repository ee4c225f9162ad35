// The Worker's entry: the Rust worker as worker-build builds it, with the
// common notification POST taken on the quick route first.
//
// workers-rs runs every request as an async Rust future: the promise
// plumbing around it, and each `await` of a JavaScript promise from wasm,
// cost more CPU than the edge's own work on a notification POST
// (docs/benchmarks.md, "The quick route"). On the quick route
// (`quick_route.mjs`) the body is read and the queue send awaited in
// JavaScript, between synchronous calls into the same Rust code, which
// decides everything. Every other request, and every POST the quick route
// hands back, goes to the Rust `fetch` (the full route) as before.
//
// The entry is a plain handler object, not a class: for a class the runtime
// constructs an instance per request, and worker-build's class answers that
// with a `Proxy` whose traps wrap every method read in another `Proxy`:
// work on every request, ~12 µs of CPU in some measurements
// (docs/benchmarks.md, "The entry object"). Its handlers are called here
// with the runtime's own `env` and `ctx`, as the class would pass them.
// What the `Proxy` added, a fresh wasm instance after a trap, wasm-bindgen's
// glue does on its own: a trap marks the instance terminated, the worker
// crate's abort handler schedules a new one, and the next call into the
// wasm makes it.
import Relay, { NotificationIntake } from "../../build/index.js";
import { quickRoute } from "./quick_route.mjs";

// Read once: the exported classes are `Proxy`s, costly to read through per
// request. The prototype is the class's own (the `Proxy` traps only `new`).
const start = NotificationIntake.start;
const { fetch: rustFetch, queue: rustQueue } = Relay.prototype;

export default {
  fetch(request, env, ctx) {
    return quickRoute(request, env, ctx, start, (full) => rustFetch.call({ env, ctx }, full));
  },

  queue(batch, env, ctx) {
    return rustQueue.call({ env, ctx }, batch);
  },
};
