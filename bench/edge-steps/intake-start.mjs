// `js-route.mjs` and a `NotificationIntake` made from the request line and
// headers (the Rust `Intake::start`: route, headers, settings, queue
// binding), freed once answered. See README.md.
import { entry, START } from "./steps.mjs";

export default entry(START);
