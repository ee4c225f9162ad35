// The quick route's JavaScript with no call into the wasm: the body read as
// bytes, sent as one message by `send_within` (the queue send raced against
// the deadline, as the Rust worker sends), and the edge's reply. See README.md.
import { entry, ROUTE } from "./steps.mjs";

export default entry(ROUTE);
