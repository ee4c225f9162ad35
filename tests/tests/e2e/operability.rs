//! What operators and tooling ask of the fan-out, answered to stock clients:
//! health on both ports and reflection on the main port (Python's
//! grpcio-health-checking and grpcio-reflection), and NOT_SERVING while it
//! drains (tonic-health's client watching).

use std::process::Command;
use std::time::Duration;

use graph_relay_tests::fanout::Fanout;
use serde_json::{json, Value};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// `tests/python/probe.py` with the venv `make test` installs.
fn probe(address: std::net::SocketAddr, reflection: bool) -> Value {
    let root = graph_relay_tests::repo_root();
    let mut command = Command::new(root.join("target/python/bin/python"));
    command.arg(root.join("tests/python/probe.py")).arg(address.to_string());
    if reflection {
        command.arg("--reflection");
    }
    let output = command.output().expect("the Python test clients (scripts/setup.sh installs them)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("probe.py prints JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn stock_python_clients_get_health_on_both_ports_and_reflection_on_the_main_one() {
    let fanout = Fanout::start_with(&["--ingest-listen", "127.0.0.1:0"]).await;
    let serving = json!({"": "SERVING", "graphrelay.v1.Fanout": "SERVING"});

    let main = probe(fanout.addr, true);
    assert_eq!(main["health"], serving);
    let services: Vec<&str> = main["services"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for service in ["graphrelay.v1.Fanout", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"] {
        assert!(services.contains(&service), "{service} not listed: {services:?}");
    }
    assert_eq!(main["methods"], json!(["graphrelay.v1.Fanout/Publish", "graphrelay.v1.Fanout/Subscribe"]));

    let ingest = probe(fanout.ingest_addr.expect("an ingest port"), false);
    assert_eq!(ingest["health"], serving, "the ingest port answers health checks too");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_draining_fanout_says_not_serving_before_it_stops() {
    let mut fanout = Fanout::start().await;
    let channel = tonic::transport::Channel::from_shared(fanout.url()).unwrap().connect().await.unwrap();
    let mut health = HealthClient::new(channel);
    let request = HealthCheckRequest { service: "graphrelay.v1.Fanout".into() };
    let mut updates = health.watch(request).await.unwrap().into_inner();
    let first = updates.message().await.unwrap().expect("a first status");
    assert_eq!(first.status(), ServingStatus::Serving);

    // SIGTERM, as systemd or Kubernetes stop it; the watch stays open while it drains.
    let stopping = tokio::task::spawn_blocking(move || fanout.stop(Duration::from_secs(20)));
    let next = tokio::time::timeout(graph_relay_tests::WAIT, updates.message()).await.expect("an update in time");
    assert_eq!(next.unwrap().expect("a status before the end").status(), ServingStatus::NotServing);
    let status = stopping.await.unwrap().expect("it stopped");
    assert!(status.success(), "a graceful stop: {status}");
}

/// `--log-format json`: every stderr line is one JSON object, a line about
/// a notification names its sequence and subscription, and no token shows.
#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_one_object_a_line_name_the_notification_and_hold_no_secret() {
    use graph_relay_proto::v1::{notification::Kind, EncryptedContent};
    use graph_relay_tests::publisher::{change, Publisher};

    let mut fanout = Fanout::start_with(&["--log-format", "json"]).await;
    let mut rich = change("sub-rich", 1);
    if let Some(Kind::Change(change)) = rich.kind.as_mut() {
        change.encrypted_content = Some(EncryptedContent {
            data: "AAAA".into(),
            data_key: "AAAA".into(),
            data_signature: "AAAA".into(),
            encryption_certificate_id: "no-such-certificate".into(),
            ..Default::default()
        });
    }
    let mut publisher = Publisher::connect(&fanout.url()).await;
    publisher.publish(vec![change("sub-plain", 0), rich]).await.unwrap();
    fanout.wait_for_log("rich notification stored undecrypted").await;

    let text = fanout.log_text();
    let lines: Vec<Value> = text
        .lines()
        .filter(|line| !line.starts_with("graph-relay ") && !line.is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let line = lines.iter().find(|l| l["message"] == "rich notification stored undecrypted").unwrap();
    assert_eq!(line["sequence"], 2, "the second item of the first publish");
    assert_eq!(line["subscription_id"], "sub-rich");
    assert_eq!(line["level"], "WARN");
    assert!(line["reason"].as_str().unwrap().contains("no-such-certificate"));
    for secret in [graph_relay_tests::INGEST_TOKEN, graph_relay_tests::SUBSCRIBER_TOKEN] {
        assert!(!text.contains(secret), "a token in the log");
    }
}

/// The systemd unit in `examples/` passes `systemd-analyze verify` (pointed
/// at the binary this tree built) with no warning, and its sandboxing rates
/// as low exposure. Skips where systemd-analyze is missing.
#[test]
fn the_systemd_unit_verifies_and_its_sandbox_rates_low_exposure() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    };
    assert!(version.status.success());
    let root = graph_relay_tests::repo_root();
    let unit = std::fs::read_to_string(root.join("examples/systemd/graph-relay.service")).unwrap();
    let binary = graph_relay_tests::fanout::binary();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("graph-relay.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/graph-relay", binary.to_str().unwrap())).unwrap();

    let verify = Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&path).output().unwrap();
    let said = String::from_utf8_lossy(&verify.stdout).to_string() + &String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");

    let security = Command::new("systemd-analyze").args(["security", "--offline=true"]).arg(&path).output().unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    let overall = report.lines().find(|l| l.contains("Overall exposure level")).expect("an overall rating");
    let score: f64 = overall.split(':').nth(1).and_then(|s| s.split_whitespace().next()).unwrap().parse().unwrap();
    assert!(score <= 2.0, "exposure {score} (0 best, 10 worst): {overall}");
}
