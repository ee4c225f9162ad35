// The edge's contract as a Cloudflare user would write it by hand, in plain
// JavaScript: the peer the Rust worker is measured against (make bench;
// bench/benches/edge_compare.rs). Same routes, same checks, same Queue:
//   - the validation handshake: the decoded validationToken, text/plain, 200;
//   - each item's clientState against CLIENT_STATES, in constant time
//     (crypto.subtle.timingSafeEqual);
//   - validationTokens verified with WebCrypto (RS256 against the JWKS at
//     GRAPH_JWKS_URL, cached), their claims checked: audience GRAPH_APP_IDS,
//     caller Microsoft Graph Change Tracking, issuer of the token's tenant,
//     time window, every rich item's tenant covered; a token verified once
//     is remembered;
//   - accepted items to the NOTIFICATIONS queue, then 202.
const GRAPH_CHANGE_TRACKING = "0bf30f3b-4a52-48df-9a82-234910c4a086";
const LEEWAY_SECONDS = 120;
const encoder = new TextEncoder();

let signingKeys = null; // Map kid -> CryptoKey, per isolate
const verifiedTokens = new Map(); // token -> { tid, nbf, exp }

function text(status, body) {
  return new Response(body, { status, headers: { "content-type": "text/plain; charset=utf-8" } });
}

function clientStateMatches(offered, accepted) {
  if (typeof offered !== "string") return false;
  const bytes = encoder.encode(offered);
  let match = false;
  for (const state of accepted) {
    if (state.byteLength === bytes.byteLength && crypto.subtle.timingSafeEqual(state, bytes)) match = true;
  }
  return match;
}

async function keys(env) {
  if (signingKeys) return signingKeys;
  const jwks = await (await fetch(env.GRAPH_JWKS_URL)).json();
  const imported = new Map();
  for (const jwk of jwks.keys ?? []) {
    if (jwk.kty !== "RSA" || !jwk.kid) continue;
    const key = await crypto.subtle.importKey("jwk", { kty: "RSA", n: jwk.n, e: jwk.e, alg: "RS256" },
      { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, ["verify"]);
    imported.set(jwk.kid, key);
  }
  signingKeys = imported;
  return imported;
}

function base64url(part) {
  const padded = part.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((part.length + 3) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

async function verify(token, env) {
  const known = verifiedTokens.get(token);
  if (known) return known;
  const [header, payload, signature] = token.split(".");
  const head = JSON.parse(new TextDecoder().decode(base64url(header)));
  if (head.alg !== "RS256") throw new Error("not RS256");
  const key = (await keys(env)).get(head.kid);
  if (!key) throw new Error("unknown kid");
  const signed = encoder.encode(`${header}.${payload}`);
  if (!(await crypto.subtle.verify("RSASSA-PKCS1-v1_5", key, base64url(signature), signed))) throw new Error("bad signature");
  const claims = JSON.parse(new TextDecoder().decode(base64url(payload)));
  const appIds = env.GRAPH_APP_IDS.split(",");
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!audiences.some((aud) => appIds.includes(aud))) throw new Error("wrong audience");
  if ((claims.appid ?? claims.azp) !== GRAPH_CHANGE_TRACKING) throw new Error("wrong caller");
  const tid = claims.tid ?? "";
  if (!tid || (claims.iss !== `https://sts.windows.net/${tid}/` && claims.iss !== `https://login.microsoftonline.com/${tid}/v2.0`)) {
    throw new Error("wrong issuer");
  }
  const vouched = { tid, nbf: claims.nbf, exp: claims.exp };
  verifiedTokens.set(token, vouched);
  return vouched;
}

async function tokensHold(tokens, richTenants, env) {
  if (tokens === undefined) return richTenants.length === 0;
  if (!Array.isArray(tokens) || tokens.length === 0) return false;
  const now = Date.now() / 1000;
  const tenants = [];
  for (const token of tokens) {
    const vouched = await verify(String(token), env);
    if (now > vouched.exp + LEEWAY_SECONDS || now + LEEWAY_SECONDS < vouched.nbf) return false;
    tenants.push(vouched.tid.toLowerCase());
  }
  return richTenants.every((tenant) => tenants.includes(String(tenant).toLowerCase()));
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/healthz") return text(200, "ok");
    if (url.pathname !== "/graph/notifications" && url.pathname !== "/graph/lifecycle") return text(404, "no such route");
    if (request.method !== "POST") return text(405, "use POST");
    const handshake = url.searchParams.get("validationToken");
    if (handshake !== null) return text(200, handshake);
    let body;
    try {
      body = await request.json();
    } catch {
      return text(400, "the body is not JSON");
    }
    if (!Array.isArray(body?.value)) return text(400, "no value array");
    const states = env.CLIENT_STATES.split(",").map((state) => encoder.encode(state.trim()));
    const accepted = body.value.filter((item) => clientStateMatches(item?.clientState, states));
    if (accepted.length === 0) return text(202, "");
    const rich = accepted.filter((item) => item.encryptedContent).map((item) => item.tenantId);
    try {
      if (!(await tokensHold(body.validationTokens, rich, env))) return text(202, "");
    } catch {
      return text(202, "");
    }
    for (const item of accepted) delete item.clientState;
    await env.NOTIFICATIONS.sendBatch(accepted.map((item) => ({ body: item })));
    return text(202, "");
  },
};
