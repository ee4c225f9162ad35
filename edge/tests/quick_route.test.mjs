// The quick route's JavaScript (edge/src/worker_glue/quick_route.mjs) under
// Node's test runner (`make test`), with a stand-in for the Rust
// `NotificationIntake` that records every call. The decisions themselves are
// Rust's, tested natively (edge/src/intake_tests.rs); this checks the order
// of the steps, what is handed to each, and that a refused send, a body for
// the full route and a failing step each end as they should. The e2e tests
// drive the real intake in workerd.
import assert from "node:assert/strict";
import { test } from "node:test";

import { quickRoute } from "../src/worker_glue/quick_route.mjs";

const URL = "https://edge.example/graph/notifications";

function post(body = '{"value":[]}') {
  return new Request(URL, { method: "POST", headers: { "content-type": "application/json" }, body });
}

/** An intake answering `accept` with `verdict` and `send` with `send()`. */
function intake({ verdict, send = async () => true, status = 202, text = "", fastPath }) {
  const calls = [];
  return {
    calls,
    accept(body) {
      calls.push(["accept", new TextDecoder().decode(body)]);
      if (verdict instanceof Error) throw verdict;
      return verdict;
    },
    send() {
      calls.push(["send"]);
      return send();
    },
    finish(sent) {
      calls.push(["finish", sent]);
      return fastPath;
    },
    full(request, ctx) {
      calls.push(["full", request, ctx]);
      return Promise.resolve(new Response("full, body kept", { status: 298 }));
    },
    status: () => status,
    text: () => text,
    free() {
      calls.push(["free"]);
    },
  };
}

/** Runs the route with `stand_in` as what `start` returns. */
async function route(request, stand_in) {
  const started = [];
  const waited = [];
  const fulls = [];
  const start = (...args) => (started.push(args), stand_in);
  const ctx = { waitUntil: (promise) => waited.push(promise) };
  const full = async (request) => (fulls.push(request), new Response("full", { status: 299 }));
  const response = await quickRoute(request, "the env", ctx, start, full);
  return { response, started, waited, fulls };
}

test("a request the quick route does not take goes to the full route as it came", async () => {
  const request = post();
  const { response, started, fulls } = await route(request, undefined);
  assert.deepEqual(started, [["POST", URL, "application/json", null, "the env"]]);
  assert.equal(fulls[0], request, "the very request, its body unread");
  assert.equal(response.status, 299);
});

test("items sent and held: the intake's answer, the fast path handed to waitUntil", async () => {
  const fastPath = Promise.resolve();
  const stand_in = intake({ verdict: 1, fastPath });
  const { response, waited, fulls } = await route(post('{"value":[1]}'), stand_in);
  assert.deepEqual(stand_in.calls, [["accept", '{"value":[1]}'], ["send"], ["finish", true], ["free"]]);
  assert.deepEqual(waited, [fastPath]);
  assert.equal(fulls.length, 0);
  assert.equal(response.status, 202);
  assert.equal(response.headers.get("content-type"), "text/plain; charset=utf-8");
  assert.equal(response.headers.get("x-content-type-options"), "nosniff");
  assert.equal(await response.text(), "");
});

test("a send refused, late or throwing is handed to finish, and its 503 says when to retry", async () => {
  const refused = new Error("queue over its limit");
  for (const [send, expected] of [
    [async () => Promise.reject(refused), refused],
    [() => { throw refused; }, refused],
    [async () => false, false],
  ]) {
    const stand_in = intake({ verdict: 1, send, status: 503, text: "notifications could not be stored; retry later" });
    const { response, waited } = await route(post(), stand_in);
    assert.deepEqual(stand_in.calls.slice(1), [["send"], ["finish", expected], ["free"]]);
    assert.equal(waited.length, 0, "no fast path without one");
    assert.equal(response.status, 503);
    assert.equal(response.headers.get("retry-after"), "10");
    assert.equal(await response.text(), "notifications could not be stored; retry later");
  }
});

test("an answer at once sends nothing", async () => {
  const stand_in = intake({ verdict: 0, status: 400, text: "\"value\" is empty" });
  const { response } = await route(post(), stand_in);
  assert.deepEqual(stand_in.calls.map(([step]) => step), ["accept", "free"]);
  assert.equal(response.status, 400);
  assert.equal(response.headers.get("retry-after"), null);
  assert.equal(await response.text(), "\"value\" is empty");
});

test("a body the quick route hands back goes to the full route through the intake, which kept it", async () => {
  const stand_in = intake({ verdict: 2 });
  const request = post('{"value":[{"a":1}],"validationTokens":["t"]}');
  const { response, fulls } = await route(request, stand_in);
  assert.deepEqual(stand_in.calls.map(([step]) => step), ["accept", "full", "free"]);
  const [, handed, ctx] = stand_in.calls[1];
  assert.equal(handed, request, "the request itself, with its headers");
  assert.equal(typeof ctx.waitUntil, "function", "and the request's context");
  assert.equal(fulls.length, 0, "not read again");
  assert.equal(response.status, 298);
});

test("a step that throws still frees the intake, and the error reaches the runtime", async () => {
  const stand_in = intake({ verdict: new Error("unreachable executed") });
  await assert.rejects(route(post(), stand_in), /unreachable executed/);
  assert.deepEqual(stand_in.calls.map(([step]) => step), ["accept", "free"]);
});
