// The least any Worker does for a notification POST in queue mode: read the
// body, one `sendBatch` to the NOTIFICATIONS queue, 202. No parsing, no
// checks. Its CPU per request (bench/benches/edge_compare.rs) is the
// platform's share of every edge's: under wrangler dev, mostly the local
// Queue simulation. Not a worker to deploy.
export default {
  async fetch(request, env) {
    if (new URL(request.url).pathname === "/healthz") return new Response("ok");
    const body = await request.text();
    await env.NOTIFICATIONS.sendBatch([{ body }]);
    return new Response(null, { status: 202 });
  },
};
