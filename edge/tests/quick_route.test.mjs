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

/** An intake answering `accept` with `verdict`, `send` with `send()`,
 * `verifying` with `verifying()` and `verified` with `afterVerify`. */
function intake({
  verdict,
  send = async () => true,
  verifying = async () => [true],
  afterVerify = 1,
  status = 202,
  text = "",
  fastPath,
  parsed = false,
}) {
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
    verifying() {
      calls.push(["verifying"]);
      return verifying();
    },
    verified(outcome) {
      calls.push(["verified", outcome]);
      return afterVerify;
    },
    finish(sent) {
      calls.push(["finish", sent]);
      return fastPath;
    },
    full(ctx) {
      calls.push(["full", ctx]);
      return parsed ? Promise.resolve(new Response("full, from the parsed body", { status: 298 })) : undefined;
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

test("a body handed back goes to the full route from the intake's parse, or else read again", async () => {
  const parsed = intake({ verdict: 2, parsed: true });
  const first = await route(post('{"value":[{"a":1}],"validationTokens":["t"]}'), parsed);
  assert.deepEqual(parsed.calls.map(([step]) => step), ["accept", "full", "free"]);
  assert.equal(typeof parsed.calls[1][1].waitUntil, "function", "the full route gets the request's context");
  assert.equal(first.fulls.length, 0, "nothing read again");
  assert.equal(first.response.status, 298);

  const unparsed = intake({ verdict: 2 });
  const request = post('{"value":[{"large":1}]}');
  request.headers.set("x-trace", "7");
  const { response, fulls } = await route(request, unparsed);
  assert.deepEqual(unparsed.calls.map(([step]) => step), ["accept", "full", "free"]);
  const [again] = fulls;
  assert.notEqual(again, request);
  assert.equal(again.method, "POST");
  assert.equal(again.url, URL);
  assert.equal(again.headers.get("x-trace"), "7");
  assert.equal(await again.text(), '{"value":[{"large":1}]}', "with the body already read");
  assert.equal(response.status, 299);
});

test("token signatures being checked: their outcome goes to verified, which decides what follows", async () => {
  const checked = intake({ verdict: 3, verifying: async () => [true, true], afterVerify: 1 });
  const { response } = await route(post(), checked);
  const steps = ["accept", "verifying", "verified", "send", "finish", "free"];
  assert.deepEqual(checked.calls.map(([step]) => step), steps);
  assert.deepEqual(checked.calls[2], ["verified", [true, true]]);
  assert.equal(response.status, 202);

  const refused = new Error("the key cannot verify");
  for (const verifying of [async () => Promise.reject(refused), () => { throw refused; }]) {
    const failed = intake({ verdict: 3, verifying, afterVerify: 2, parsed: true });
    const { response, fulls } = await route(post(), failed);
    assert.deepEqual(failed.calls.map(([step]) => step), ["accept", "verifying", "verified", "full", "free"]);
    assert.equal(failed.calls[2][1], refused, "what the check threw is handed on");
    assert.equal(fulls.length, 0, "the full route goes on from the parsed body");
    assert.equal(response.status, 298);
  }
});

test("a step that throws still frees the intake, and the error reaches the runtime", async () => {
  const stand_in = intake({ verdict: new Error("unreachable executed") });
  await assert.rejects(route(post(), stand_in), /unreachable executed/);
  assert.deepEqual(stand_in.calls.map(([step]) => step), ["accept", "free"]);
});
