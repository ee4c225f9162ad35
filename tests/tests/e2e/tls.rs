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
        let server = leaf(vec!["localhost".into()]);
        let client = leaf(vec!["graph-relay-edge".into()]);
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), &server.0).unwrap();
        std::fs::write(dir.path().join("server.key"), &server.1).unwrap();
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
