//! The subscriber examples in Rust, Python (grpcio) and Node.js
//! (@grpc/grpc-js), run against the real fan-out so they never rot: each
//! receives with its bearer token, and resumes by cursor after the fan-out
//! dies and comes back, with no event missed or repeated.

use std::process::Stdio;

use graph_relay_tests::fanout::Fanout;
use graph_relay_tests::publisher::{changes, Publisher};
use graph_relay_tests::repo_root;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// How each example is started: the command, and the server address in the
/// form its language's client takes.
fn example(language: &str, fanout: &Fanout) -> (Command, String) {
    let root = repo_root();
    match language {
        "rust" => {
            let binary = root.join("target/debug/examples/subscriber");
            assert!(binary.exists(), "{} is missing: run `make test`", binary.display());
            (Command::new(binary), fanout.url())
        }
        "python" => {
            let mut command = Command::new(root.join("target/python/bin/python"));
            command.arg(root.join("examples/python/subscriber.py"));
            (command, fanout.addr.to_string())
        }
        "node" => {
            let mut command = Command::new("node");
            command.arg(root.join("examples/node/subscriber.js"));
            (command, fanout.addr.to_string())
        }
        other => panic!("no {other} example"),
    }
}

fn start(language: &str, fanout: &Fanout) -> (Child, Lines<BufReader<ChildStdout>>) {
    let (mut command, server) = example(language, fanout);
    let mut child = command
        .env("GRAPH_RELAY_SERVER", server)
        .env("GRAPH_RELAY_TOKEN", graph_relay_tests::SUBSCRIBER_TOKEN)
        .env("GRAPH_RELAY_AFTER_SEQUENCE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("the {language} example starts (make test installs its packages): {e}"));
    let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    (child, lines)
}

/// The sequences of the next `count` lines ("SEQUENCE CHANGE_TYPE RESOURCE").
async fn sequences(language: &str, lines: &mut Lines<BufReader<ChildStdout>>, count: usize) -> Vec<u64> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let line = tokio::time::timeout(graph_relay_tests::WAIT, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("the {language} example printed {seen:?} and then nothing"))
            .unwrap()
            .unwrap_or_else(|| panic!("the {language} example exited after {seen:?}"));
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 3, "{language}: {line}");
        assert_eq!(fields[1], "created", "{language}: {line}");
        assert!(fields[2].starts_with("users/u/messages/"), "{language}: {line}");
        seen.push(fields[0].parse().unwrap_or_else(|_| panic!("{language}: {line}")));
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_python_and_node_subscribers_receive_and_resume_by_cursor_after_the_fanout_restarts() {
    let mut fanout = Fanout::start().await;
    Publisher::connect(&fanout.url()).await.publish(changes("s", 0..3)).await.unwrap();
    let mut running = Vec::new();
    for language in ["rust", "python", "node"] {
        let (child, mut lines) = start(language, &fanout);
        assert_eq!(sequences(language, &mut lines, 3).await, [1, 2, 3], "{language}: replayed from the start");
        running.push((language, child, lines));
    }

    // A crash: every stream breaks; the examples retry until it is back.
    fanout.restart().await;
    Publisher::connect(&fanout.url()).await.publish(changes("s", 3..6)).await.unwrap();
    for (language, _child, lines) in &mut running {
        assert_eq!(sequences(language, lines, 3).await, [4, 5, 6], "{language}: resumed after 3, nothing twice");
    }
}
