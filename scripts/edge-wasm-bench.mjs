// Times the edge's request path as wasm under Node's V8 (the engine workerd
// runs): see bench/edge-wasm/src/lib.rs. Usage (scripts/edge-wasm-bench.sh):
//   node scripts/edge-wasm-bench.mjs <dir with wasm-bindgen's nodejs output>
import { createRequire } from "node:module";
import crypto from "node:crypto";
import path from "node:path";

const require = createRequire(import.meta.url);
const { Edge } = require(path.resolve(process.argv[2], "graph_relay_edge_wasm_bench.js"));

const CLIENT_STATE = "bench-client-state";
const APP_ID = "11111111-2222-3333-4444-555555555555";
const TENANT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const GRAPH_CHANGE_TRACKING = "0bf30f3b-4a52-48df-9a82-234910c4a086";

// A signing key like the identity platform's (RSA 2048, RS256), its JWKS,
// and a validationToken as Graph Change Tracking issues it (v1 form).
const { privateKey, publicKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
const jwks = JSON.stringify({ keys: [{ ...publicKey.export({ format: "jwk" }), kid: "bench", alg: "RS256", use: "sig" }] });
const b64url = (value) => Buffer.from(value).toString("base64url");
const now = Math.floor(Date.now() / 1000);
const header = b64url(JSON.stringify({ alg: "RS256", typ: "JWT", kid: "bench" }));
const claims = b64url(JSON.stringify({
  aud: APP_ID, iss: `https://sts.windows.net/${TENANT}/`, tid: TENANT, appid: GRAPH_CHANGE_TRACKING,
  iat: now, nbf: now - 60, exp: now + 3600, ver: "1.0",
}));
const signature = crypto.sign("RSA-SHA256", Buffer.from(`${header}.${claims}`), privateKey).toString("base64url");
const token = `${header}.${claims}.${signature}`;

// Graph's items (the shapes of Microsoft's documented samples), ~1 KB each when rich.
function item(i, rich) {
  const resource = `Users/u-${i}/Messages/m-${i}`;
  const change = {
    id: `id-${i}`, subscriptionId: `sub-${i % 7}`, subscriptionExpirationDateTime: "2026-12-01T10:00:00.0000000Z",
    clientState: CLIENT_STATE, changeType: "created", resource, tenantId: TENANT,
    resourceData: { "@odata.type": "#Microsoft.Graph.Message", "@odata.id": resource, "@odata.etag": "W/\"CQAAABYAAAD\"", id: `m-${i}` },
  };
  if (rich) {
    change.encryptedContent = {
      data: crypto.randomBytes(512).toString("base64"), dataKey: crypto.randomBytes(256).toString("base64"),
      dataSignature: crypto.randomBytes(32).toString("base64"), encryptionCertificateId: "cert-1",
      encryptionCertificateThumbprint: "AB12CD34",
    };
  }
  return change;
}
function body(size, rich) {
  const envelope = { value: Array.from({ length: size }, (_, i) => item(i, rich)) };
  if (rich) envelope.validationTokens = [token];
  return Buffer.from(JSON.stringify(envelope));
}

// Median over rounds of the time per call, each round long enough (≥ 200 ms)
// for the clock's resolution not to matter.
function time(run) {
  run(20); // warm-up: V8 tiers the wasm up
  let iterations = 1;
  for (let t = 0; t < 50; iterations *= 2) {
    const start = performance.now();
    run(iterations);
    t = performance.now() - start;
  }
  const rounds = [];
  for (let r = 0; r < 5; r++) {
    const start = performance.now();
    run(iterations);
    rounds.push(((performance.now() - start) * 1000) / iterations);
  }
  rounds.sort((a, b) => a - b);
  return rounds[2];
}

const edge = new Edge(CLIENT_STATE, jwks, APP_ID);
const rows = [];
const cases = [["basic", false, false], ["rich, token seen before", true, false], ["rich, token's first sight", true, true]];
for (const [what, rich, firstSight] of cases) {
  for (const size of [1, 10, 100]) {
    const payload = body(size, rich);
    const us = time((n) => edge.request(payload, n, firstSight, now));
    rows.push([`request, ${size} notification${size > 1 ? "s" : ""}, ${what} (${payload.length} B)`, us]);
  }
}
const tokens = JSON.stringify([token]);
rows.push(["validationTokens only, 1 token, first sight (cached keys)", time((n) => edge.tokens(tokens, TENANT, n, true, now))]);
rows.push(["validationTokens only, 1 token, seen before", time((n) => edge.tokens(tokens, TENANT, n, false, now))]);

console.log(`Node ${process.version} (V8 ${process.versions.v8}), wasm built with the worker's \`edge\` profile\n`);
console.log("| what (wasm) | CPU per request |");
console.log("|---|---:|");
for (const [what, us] of rows) {
  console.log(`| ${what} | ${us >= 1000 ? (us / 1000).toFixed(2) + " ms" : us.toFixed(1) + " µs"} |`);
}
