//! TLS and mutual TLS on the fan-out's listener, with a CA, server and client
//! certificates generated at run time (nothing secret is committed).

use std::path::{Path, PathBuf};

use graph_relay_proto::v1::{fanout_client::FanoutClient, Filter, PublishRequest, SubscribeRequest};
use graph_relay_tests::fanout::Fanout;
use graph_relay_tests::publisher::change;
use graph_relay_tests::subscriber::with_token;
use graph_relay_tests::{INGEST_TOKEN, SUBSCRIBER_TOKEN};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

struct Pki {
    dir: tempfile::TempDir,
    ca: String,
    client: (String, String),
}

impl Pki {
    fn generate() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |names: Vec<String>| {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(names).unwrap().signed_by(&key, &issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let server = leaf(vec!["localhost".into(), "127.0.0.1".into()]);
        let client = leaf(vec!["graph-relay-edge".into()]);
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), &server.0).unwrap();
        std::fs::write(dir.path().join("server.key"), &server.1).unwrap();
        std::fs::write(dir.path().join("client.pem"), &client.0).unwrap();
        std::fs::write(dir.path().join("client.key"), &client.1).unwrap();
        Pki { dir, ca: ca_cert.pem(), client }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn arg(path: &Path) -> String {
    path.display().to_string()
}

async fn channel(fanout: &Fanout, pki: &Pki, with_client_cert: bool) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&pki.ca)).domain_name("localhost");
    if with_client_cert {
        tls = tls.identity(Identity::from_pem(&pki.client.0, &pki.client.1));
    }
    Channel::from_shared(format!("https://{}", fanout.addr)).unwrap().tls_config(tls)?.connect().await
}

async fn round_trip(channel: Channel) -> Result<u64, tonic::Status> {
    let mut client = FanoutClient::new(channel);
    let request = SubscribeRequest { filter: Some(Filter::default()), after_sequence: None };
    let mut stream = client.subscribe(with_token(request, SUBSCRIBER_TOKEN)).await?.into_inner();
    let publish = PublishRequest { notifications: vec![change("over-tls", 1)] };
    let published = client.publish(with_token(publish, INGEST_TOKEN)).await?.into_inner();
    let batch = stream.message().await?.expect("a batch");
    let sequences: Vec<u64> = batch.events.iter().map(|event| event.sequence).collect();
    assert_eq!(sequences, [published.first_sequence], "the one event published");
    Ok(published.first_sequence)
}

#[tokio::test]
async fn the_listener_speaks_tls_and_refuses_plaintext() {
    let pki = Pki::generate();
    let fanout =
        Fanout::start_with(&["--tls-cert", &arg(&pki.path("server.pem")), "--tls-key", &arg(&pki.path("server.key"))])
            .await;
    let channel = channel(&fanout, &pki, false).await.expect("TLS handshake with the test CA");
    assert_eq!(round_trip(channel).await.unwrap(), 1);
    let plaintext = FanoutClient::connect(fanout.url()).await;
    let refused = match plaintext {
        Err(_) => true,
        Ok(mut client) => client.publish(with_token(PublishRequest::default(), INGEST_TOKEN)).await.is_err(),
    };
    assert!(refused, "a plaintext client gets nothing from a TLS listener");
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let pki = Pki::generate();
    let fanout = Fanout::start_with(&[
        "--tls-cert",
        &arg(&pki.path("server.pem")),
        "--tls-key",
        &arg(&pki.path("server.key")),
        "--tls-client-ca",
        &arg(&pki.path("ca.pem")),
    ])
    .await;
    let without = match channel(&fanout, &pki, false).await {
        Err(_) => true,
        Ok(channel) => round_trip(channel).await.is_err(),
    };
    assert!(without, "no client certificate, no service");
    let with = channel(&fanout, &pki, true).await.expect("mutual TLS handshake");
    assert_eq!(round_trip(with).await.unwrap(), 1);
}

/// `--log nats` over mutual TLS: with the CA and a client certificate the
/// replica stores and serves through a NATS server that requires both;
/// without the client certificate it refuses to start, and says why.
#[tokio::test(flavor = "multi_thread")]
async fn the_shared_log_speaks_mutual_tls_to_nats() {
    use graph_relay_tests::nats::Nats;
    use graph_relay_tests::publisher::{changes, Publisher};

    let pki = Pki::generate();
    let (cert, key, ca) = (arg(&pki.path("server.pem")), arg(&pki.path("server.key")), arg(&pki.path("ca.pem")));
    let nats = Nats::single_with(&["--tlsverify", "--tlscert", &cert, "--tlskey", &key, "--tlscacert", &ca]).await;
    let urls = nats.urls();
    let shared = ["--log", "nats", "--nats-url", &urls, "--nats-tls-ca", &ca];
    let (client_cert, client_key) = (arg(&pki.path("client.pem")), arg(&pki.path("client.key")));
    let mutual = [&shared[..], &["--nats-tls-cert", &client_cert, "--nats-tls-key", &client_key]].concat();
    let fanout = Fanout::start_with(&mutual).await;
    let stored = Publisher::connect(&fanout.url()).await.publish(changes("over-tls", 0..2)).await.unwrap();
    assert_eq!((stored.first_sequence, stored.stored), (1, 2));

    let output = std::process::Command::new(graph_relay_tests::fanout::binary())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--ingest-token",
            INGEST_TOKEN,
            "--subscriber-token",
            SUBSCRIBER_TOKEN,
        ])
        .arg("--data-dir")
        .arg(pki.path("refused-data"))
        .args(shared)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && said.contains("connecting to NATS"), "{said}");
}
