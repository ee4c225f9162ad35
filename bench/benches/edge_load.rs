//! The real worker under `wrangler dev` (workerd) loaded by wrk from loopback
//! (`make bench`): batches of 1, 10 and 100 notifications, with and without
//! validationTokens, forwarded (queue mode) or not. "Not forwarded" sends the
//! same batches with a clientState the edge rejects: every item is parsed and
//! validated, then 202 with nothing queued, which is the pure validation cost.

use std::process::Command;

use graph_relay_tests::edge::{Edge, EdgeConfig};
use graph_relay_tests::fanout::Fanout;
use graph_relay_tests::tokens::{valid_claims, JwksServer, SigningKey};
use graph_relay_tests::{graph, CLIENT_STATE};
use serde_json::{json, Value};

const SECONDS: &str = "5";

fn body(size: usize, client_state: &str, signed: bool) -> String {
    let items: Vec<Value> = (0..size)
        .map(|i| {
            let mut item = graph::change(&format!("sub-{i}"), &format!("Users/u/Messages/m-{i}"), "created", "t", client_state);
            if signed {
                item["encryptedContent"] = json!({"data": "ZGF0YQ==", "dataKey": "a2V5", "dataSignature": "c2ln", "encryptionCertificateId": "c1"});
            }
            item
        })
        .collect();
    let mut collection = graph::collection(items);
    if signed {
        collection["validationTokens"] = json!([SigningKey::pair().0.sign(&valid_claims())]);
    }
    collection.to_string()
}

/// Runs wrk with `body` POSTed to the notifications route; returns its report.
fn wrk(url: &str, body: &str, dir: &std::path::Path) -> String {
    let body_path = dir.join("body.json");
    std::fs::write(&body_path, body).expect("body file");
    let script = dir.join("post.lua");
    let lua = format!(
        "local f = io.open({:?}, 'rb')\nwrk.method = 'POST'\nwrk.body = f:read('*a')\nf:close()\nwrk.headers['content-type'] = 'application/json'\n",
        body_path.display().to_string()
    );
    std::fs::write(&script, lua).expect("lua script");
    let output = Command::new("wrk")
        .args(["-t2", "-c8", "-d", SECONDS, "--latency", "-s"])
        .arg(&script)
        .arg(format!("{url}/graph/notifications"))
        .output()
        .expect("wrk (apt-get install wrk)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn field<'a>(report: &'a str, prefix: &str) -> &'a str {
    report.lines().find_map(|l| l.trim().strip_prefix(prefix)).map(str::trim).unwrap_or("-")
}

#[tokio::main]
async fn main() {
    let jwks = JwksServer::start(vec![SigningKey::pair().0.jwk()]).await;
    let fanout = Fanout::start().await;
    let edge = Edge::start_with(EdgeConfig::for_fanout(fanout.url()).with_jwks(&jwks.url)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    println!("| batch | validationTokens | forwarded | requests/s | p50 | p99 | non-2xx | socket errors |");
    println!("|---:|---|---|---:|---:|---:|---:|---:|");
    for size in [1, 10, 100] {
        for signed in [false, true] {
            for forwarded in [true, false] {
                let state = if forwarded { CLIENT_STATE } else { "not-the-client-state" };
                let report = wrk(&edge.url, &body(size, state, signed), dir.path());
                let latency = |p: &str| {
                    report.lines().find_map(|l| l.trim().strip_prefix(p)).map(str::trim).unwrap_or("-").to_owned()
                };
                println!(
                    "| {size} | {} | {} | {} | {} | {} | {} | {} |",
                    if signed { "1 token" } else { "none" },
                    if forwarded { "queued" } else { "no (validation only)" },
                    field(&report, "Requests/sec:"),
                    latency("50%"),
                    latency("99%"),
                    field(&report, "Non-2xx or 3xx responses:").replace('-', "0"),
                    field(&report, "Socket errors:").replace('-', "0"),
                );
            }
        }
    }
}
