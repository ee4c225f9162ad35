//! The edge as an operator deploys and watches it: `wrangler deploy` refuses
//! a configuration with production values missing and bundles a complete
//! one within Cloudflare's limits; `/healthz` names missing settings; every
//! notification request is one JSON log line without secrets.

use std::path::Path;
use std::process::Command;

use graph_relay_tests::edge::{Edge, EdgeConfig, OFFLINE_ENV};
use graph_relay_tests::fanout::Fanout;
use graph_relay_tests::{graph, repo_root, CLIENT_STATE};
use serde_json::Value;

/// Cloudflare's limit on a Worker's compressed size on the Free plan (the
/// paid plans allow 10 MiB).
const FREE_PLAN_GZIP_LIMIT: u64 = 3 << 20;

/// `wrangler deploy --dry-run --outdir OUT --config CONFIG` from the
/// repository root, offline: (success, output).
fn dry_run(config: &Path, out: &Path) -> (bool, String) {
    let root = repo_root();
    let output = Command::new(root.join("node_modules/.bin/wrangler"))
        .current_dir(&root)
        .args(["deploy", "--dry-run", "--outdir"])
        .arg(out)
        .arg("--config")
        .arg(config)
        .envs(OFFLINE_ENV.iter().copied())
        .env("GRAPH_RELAY_SKIP_SECRET_CHECK", "1")
        .output()
        .expect("wrangler runs");
    let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

fn gzip_size(path: &Path) -> u64 {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&std::fs::read(path).unwrap()).unwrap();
    encoder.finish().unwrap().len() as u64
}

#[test]
fn deploy_refuses_missing_production_values_and_bundles_a_complete_config_within_the_limits() {
    let root = repo_root();
    let dir = tempfile::tempdir().unwrap();
    let (deployed, said) = dry_run(&root.join("wrangler.toml"), &dir.path().join("as-written"));
    assert!(!deployed, "the placeholders must not deploy:\n{said}");
    assert!(said.contains("FANOUT_URL is empty"), "names FANOUT_URL:\n{said}");
    assert!(said.contains("DEAD_LETTERS: id is not a namespace id"), "names the KV id:\n{said}");

    // Filled in as an operator does; the worker `make edge` built is bundled as it is.
    let original = std::fs::read_to_string(root.join("wrangler.toml")).unwrap();
    let check = format!("node {} {{config}}", root.join("scripts/check-deploy.mjs").display());
    let config = dir.path().join("wrangler.toml");
    let filled = original
        .replace(
            "main = \"edge/src/worker_glue/entry.mjs\"",
            &format!("main = {:?}", root.join("edge/src/worker_glue/entry.mjs")),
        )
        .replace("FANOUT_URL = \"\"", "FANOUT_URL = \"https://fanout.example.com\"")
        .replace("REPLACE-WITH-THE-KV-NAMESPACE-ID", "0123456789abcdef0123456789abcdef")
        .replace(
            "command = \"node scripts/check-deploy.mjs wrangler.toml && scripts/build-edge.sh\"",
            &format!("command = {:?}", check.replace("{config}", config.to_str().unwrap())),
        );
    std::fs::write(&config, filled).unwrap();
    let out = dir.path().join("bundle");
    let (deployed, said) = dry_run(&config, &out);
    assert!(deployed, "a complete configuration bundles:\n{said}");
    assert!(said.contains("is ready for production"), "{said}");

    let (mut raw, mut gzip) = (0, 0);
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            raw += std::fs::metadata(&path).unwrap().len();
            gzip += gzip_size(&path);
        }
    }
    eprintln!("worker bundle: {raw} bytes raw, {gzip} bytes gzip");
    assert!(raw > 0 && gzip > 0, "the bundle was written to {}", out.display());
    assert!(gzip <= FREE_PLAN_GZIP_LIMIT, "the bundle is {gzip} bytes gzip, over Cloudflare's {FREE_PLAN_GZIP_LIMIT}");
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_names_missing_settings_without_values_and_notifications_wait_for_them() {
    let config = EdgeConfig {
        client_states: String::new(),
        fanout_token: String::new(),
        ..EdgeConfig::for_fanout(String::new())
    };
    let edge = Edge::start_with(config).await;
    let health = reqwest::get(format!("{}/healthz", edge.url)).await.unwrap();
    assert_eq!(health.status(), 503);
    let body = health.text().await.unwrap();
    assert!(body.contains("CLIENT_STATES is not set") && body.contains("FANOUT_TOKEN is not set"), "{body}");

    let batch = graph::collection(vec![graph::change("s", "users/u/messages/m", "created", "t", CLIENT_STATE)]);
    let answer = graph::deliver(&edge.url, "/graph/notifications", &batch).await;
    assert_eq!(answer.status, 503, "Graph retries until the edge is configured");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_notification_request_is_one_json_log_line_without_secrets() {
    let fanout = Fanout::start().await;
    let mut edge = Edge::start(fanout.url()).await;
    let good = graph::change("sub-good", "users/u/messages/m1", "created", "t", CLIENT_STATE);
    let forged = graph::change("sub-forged", "users/u/messages/m2", "created", "t", "forged-client-state");
    let answer = graph::deliver(&edge.url, "/graph/notifications", &graph::collection(vec![good, forged])).await;
    assert_eq!(answer.status, 202);
    let log = edge.process.wait_for_log("\"route\":\"notifications\"").await;
    let line = log.lines().find(|l| l.contains("\"route\":\"notifications\"")).unwrap();
    let start = line.find('{').expect("a JSON object");
    let entry: Value = serde_json::from_str(&line[start..]).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(
        (entry["items"].as_u64(), entry["accepted"].as_u64(), entry["status"].as_u64()),
        (Some(2), Some(1), Some(202))
    );
    assert_eq!(entry["rejected"]["clientState does not match any accepted value"], 1);
    assert!(entry["outcome"].as_str().unwrap().starts_with("queued 1 messages"), "{entry}");
    assert!(entry["ackMs"].is_u64());
    assert!(!log.contains(CLIENT_STATE) && !log.contains("forged-client-state"), "a clientState in the log");
    assert!(!log.contains(graph_relay_tests::INGEST_TOKEN), "the fan-out token in the log");
}
