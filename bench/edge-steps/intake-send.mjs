// `intake-accept.mjs` with the intake's own messages sent (`send`: out of
// the wasm into `send_within`), its outcome taken (`finish`) and its answer
// read (`status`, `text`): the Rust worker's quick route less the entry's
// wrapper around these calls (`quick_route.mjs`). See README.md.
import { entry, SEND } from "./steps.mjs";

export default entry(SEND);
