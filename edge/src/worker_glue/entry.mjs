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
import Relay, { NotificationIntake } from "../../build/index.js";
import { quickRoute } from "./quick_route.mjs";

// Read once: the exported class is a `Proxy`, costly to read through per request.
const start = NotificationIntake.start;

export default class GraphRelayEdge extends Relay {
  fetch(request) {
    return quickRoute(request, this.env, this.ctx, start, (full) => super.fetch(full));
  }
}
