// Runs before every `wrangler deploy` (wrangler.toml's [build] command) and
// refuses the deploy, naming each problem, while a production value is
// missing: a worker that cannot store a notification must not go live.
//
//   node scripts/check-deploy.mjs CONFIG [ENV]
//
// Checks the configuration through wrangler's own reader (the top level,
// or ENV), then asks Cloudflare whether the required secrets are set
// (`wrangler secret list`). GRAPH_RELAY_SKIP_SECRET_CHECK=1 skips that
// last, remote step (the offline dry-run in the tests).
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const { unstable_readConfig: readConfig } = require(path.join(root, "node_modules/wrangler"));

const REQUIRED_SECRETS = ["CLIENT_STATES", "FANOUT_TOKEN"];

const [configPath, env] = process.argv.slice(2);
if (!configPath) {
  console.error("usage: check-deploy.mjs CONFIG [ENV]");
  process.exit(2);
}
const config = readConfig({ config: configPath, env });
const problems = [];

const fanoutUrl = (config.vars?.FANOUT_URL ?? "").trim();
if (!fanoutUrl) {
  problems.push("[vars] FANOUT_URL is empty: set the fan-out's https:// gRPC-Web URL");
} else if (!fanoutUrl.startsWith("https://")) {
  problems.push("[vars] FANOUT_URL must be https:// in production (plain http crosses the internet in clear)");
}
for (const kv of config.kv_namespaces ?? []) {
  if (!/^[0-9a-f]{32}$/.test(kv.id ?? "")) {
    problems.push(`[[kv_namespaces]] ${kv.binding}: id is not a namespace id (\`wrangler kv namespace create ${kv.binding}\`)`);
  }
}
if (!config.observability?.enabled) {
  problems.push("[observability] is off: the edge's request logs would go nowhere");
}

if (process.env.GRAPH_RELAY_SKIP_SECRET_CHECK !== "1") {
  try {
    const args = ["secret", "list", "--format", "json", "--config", configPath, ...(env ? ["--env", env] : [])];
    const listed = JSON.parse(execFileSync(path.join(root, "node_modules/.bin/wrangler"), args, { encoding: "utf8" }));
    const names = new Set(listed.map((secret) => secret.name));
    for (const name of REQUIRED_SECRETS.filter((name) => !names.has(name))) {
      problems.push(`secret ${name} is not set: \`npx wrangler secret put ${name}\``);
    }
  } catch (error) {
    problems.push(`cannot tell whether the secrets ${REQUIRED_SECRETS.join(", ")} are set: ${error.message.split("\n")[0]}`);
  }
}

if (problems.length > 0) {
  console.error(`check-deploy: not deploying ${configPath}${env ? ` (env ${env})` : ""}:`);
  for (const problem of problems) console.error(`  - ${problem}`);
  process.exit(1);
}
console.log(`check-deploy: ${configPath}${env ? ` (env ${env})` : ""} is ready for production`);
