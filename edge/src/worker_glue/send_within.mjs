// One `sendBatch` of queue message bodies, raced against the request's
// deadline, on the JavaScript side of the Worker (see `queue.rs`: building the
// message objects and the timer here spares each notification request the
// property-by-property calls, serde conversions and Rust closures the same
// work costs across the wasm boundary).
//
// Resolves to true once the queue holds the batch, to false when `ms`
// passed first; rejects (or throws) when the queue refuses it. The timer
// exists only while the send is pending.
export function send_within(queue, bodies, ms) {
  const sent = queue.sendBatch(bodies.map((body) => ({ body, contentType: "v8" }))).then(() => true);
  let timer;
  const late = new Promise((resolve) => {
    timer = setTimeout(resolve, ms, false);
  });
  return Promise.race([sent, late]).finally(() => clearTimeout(timer));
}
