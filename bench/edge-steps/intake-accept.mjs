// `intake-start.mjs` and the body parsed, checked and encoded into queue
// messages by `NotificationIntake.accept`; the body itself is what is sent,
// so the messages' way out of the wasm is the one step left to the Rust
// worker. See README.md.
import { entry, ACCEPT } from "./steps.mjs";

export default entry(ACCEPT);
