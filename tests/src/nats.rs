//! Real `nats-server` processes with JetStream, for `serve --log nats`: a
//! single node, or a cluster on loopback whose nodes a test kills and
//! restarts. Each node keeps its store in a temporary directory of its own.

use std::path::PathBuf;
use std::process::Command;

use crate::process::Process;

/// One `nats-server`, restartable on the same ports and store.
pub struct NatsNode {
    process: Option<Process>,
    name: String,
    pub port: u16,
    /// The cluster port, and every node's, when clustered.
    cluster: Option<(u16, Vec<u16>)>,
    /// More `nats-server` flags (TLS).
    extra_args: Vec<String>,
    dir: tempfile::TempDir,
    starts: usize,
}

/// The binary: Debian's `nats-server` (installed by `make test`).
fn binary() -> PathBuf {
    let found = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|dir| dir.join("nats-server")).find(|p| p.exists()));
    found.expect("nats-server is missing: `make test` installs it (apt-get install nats-server)")
}

impl NatsNode {
    async fn start(name: String, cluster: Option<(u16, Vec<u16>)>, extra_args: Vec<String>) -> NatsNode {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = crate::free_port();
        let mut node = NatsNode { process: None, name, port, cluster, extra_args, dir, starts: 0 };
        node.launch().await;
        node
    }

    async fn launch(&mut self) {
        self.starts += 1;
        let log = self.dir.path().join(format!("nats-{}.log", self.starts));
        let mut command = Command::new(binary());
        command.args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-n", &self.name, "-js"]);
        command.arg("-sd").arg(self.dir.path().join("store")).args(&self.extra_args);
        if let Some((own, all)) = &self.cluster {
            let routes: Vec<String> = all.iter().map(|port| format!("nats://127.0.0.1:{port}")).collect();
            command.args(["--cluster_name", "relay", "--cluster", &format!("nats://127.0.0.1:{own}")]);
            command.args(["--routes", &routes.join(",")]);
        }
        let mut process = Process::spawn("nats-server", command, &log);
        process.wait_for_log("Server is ready").await;
        self.process = Some(process);
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts again on the same ports and store.
    pub async fn restart(&mut self) {
        self.kill();
        self.launch().await;
    }

    /// Whether any file of its JetStream store contains `needle`.
    pub fn store_holds(&self, needle: &[u8]) -> bool {
        fn holds(dir: &std::path::Path, needle: &[u8]) -> bool {
            let Ok(entries) = std::fs::read_dir(dir) else { return false };
            entries.flatten().any(|entry| {
                let path = entry.path();
                if path.is_dir() {
                    holds(&path, needle)
                } else {
                    std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
                }
            })
        }
        holds(&self.dir.path().join("store"), needle)
    }

    pub fn log_text(&self) -> String {
        self.process.as_ref().map(Process::log_text).unwrap_or_default()
    }
}

/// A single node or a cluster; the servers stop when it is dropped.
pub struct Nats {
    pub nodes: Vec<NatsNode>,
}

impl Nats {
    /// One node with JetStream.
    pub async fn single() -> Nats {
        Self::single_with(&[]).await
    }

    /// One node with JetStream and more `nats-server` flags (e.g. `--tlsverify`).
    pub async fn single_with(args: &[&str]) -> Nats {
        let args = args.iter().map(|a| a.to_string()).collect();
        Nats { nodes: vec![NatsNode::start("n0".into(), None, args).await] }
    }

    /// `size` clustered nodes with JetStream; returns once the cluster has
    /// elected its JetStream meta leader (streams can be created then).
    pub async fn cluster(size: usize) -> Nats {
        let cluster_ports: Vec<u16> = (0..size).map(|_| crate::free_port()).collect();
        let mut nodes = Vec::with_capacity(size);
        for (index, port) in cluster_ports.iter().enumerate() {
            let cluster = Some((*port, cluster_ports.clone()));
            nodes.push(NatsNode::start(format!("n{index}"), cluster, Vec::new()).await);
        }
        let mut nats = Nats { nodes };
        nats.wait_for_meta_leader().await;
        nats
    }

    /// Every node's URL, comma-separated (what `--nats-url` takes).
    pub fn urls(&self) -> String {
        self.nodes.iter().map(NatsNode::url).collect::<Vec<_>>().join(",")
    }

    async fn wait_for_meta_leader(&mut self) {
        // Every node logs the election: "Self is new JetStream cluster
        // metadata leader" or "JetStream cluster new metadata leader: ...".
        let first = self.nodes[0].process.as_mut().expect("node running");
        first.wait_for_log("metadata leader").await;
    }
}
