//! NATS under test: the Debian `nats-server`, started on a free loopback port,
//! driven through async-nats with the same message bytes. Core pub/sub, and
//! JetStream with file storage (durability comparable to the relay's log).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::push::OrderedConfig, consumer::DeliverPolicy, stream::StorageType};
use bytes::Bytes;
use futures_util::StreamExt;
use graph_relay_proto::v1::{notification::Kind, Event, Notification};
use prost::Message;

use crate::workload::{EventStream, Sink};

pub struct NatsServer {
    child: Child,
    pub url: String,
    /// JetStream's store: removed (and synced) on drop.
    dir: tempfile::TempDir,
}

impl NatsServer {
    pub async fn start() -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("nats-server: {e} (apt-get install nats-server)"))?;
        let url = format!("nats://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while async_nats::connect(&url).await.is_err() {
            if Instant::now() > deadline {
                return Err("nats-server did not start".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self { child, url, dir })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn client(&self) -> Result<async_nats::Client, String> {
        connect(&self.url).await
    }

    /// A core subscriber on its own connection.
    pub async fn core_subscribe(&self, tenant: Option<String>) -> Result<EventStream, String> {
        let client = self.client().await?;
        self.core_subscribe_on(&client, tenant).await
    }

    /// A core subscriber on an existing connection.
    pub async fn core_subscribe_on(
        &self,
        client: &async_nats::Client,
        tenant: Option<String>,
    ) -> Result<EventStream, String> {
        let subscriber = client.subscribe(subject_filter(tenant)).await.map_err(|e| e.to_string())?;
        client.flush().await.map_err(|e| e.to_string())?;
        Ok(Box::pin(subscriber.filter_map(|message| async move { Event::decode(message.payload).ok() })))
    }

    /// Creates the file-backed stream every JetStream run uses.
    pub async fn create_stream(&self) -> Result<(), String> {
        let context = jetstream::new(self.client().await?);
        let config = jetstream::stream::Config {
            name: "GRAPH".into(),
            subjects: vec!["graph.>".into()],
            storage: StorageType::File,
            ..Default::default()
        };
        context.get_or_create_stream(config).await.map_err(|e| e.to_string())?;
        Ok(())
    }

    /// A JetStream subscriber: an ordered push consumer of new messages, on
    /// its own connection.
    pub async fn jetstream_subscribe(&self, tenant: Option<String>) -> Result<EventStream, String> {
        let client = self.client().await?;
        let context = jetstream::new(client.clone());
        let stream = context.get_stream("GRAPH").await.map_err(|e| e.to_string())?;
        let config = OrderedConfig {
            deliver_subject: client.new_inbox(),
            filter_subject: subject_filter(tenant),
            deliver_policy: DeliverPolicy::New,
            ..Default::default()
        };
        let consumer = stream.create_consumer(config).await.map_err(|e| e.to_string())?;
        let messages = consumer.messages().await.map_err(|e| e.to_string())?;
        Ok(Box::pin(messages.filter_map(|message| async move { Event::decode(message.ok()?.payload.clone()).ok() })))
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Not left to the TempDir: its removal would land in the next run.
        graph_relay_bench::durable::remove_run_dir(self.dir.path());
    }
}

async fn connect(url: &str) -> Result<async_nats::Client, String> {
    async_nats::connect(url).await.map_err(|e| e.to_string())
}

fn subject_filter(tenant: Option<String>) -> String {
    tenant.map(|t| format!("graph.{t}")).unwrap_or_else(|| "graph.>".into())
}

/// The same bytes a relay subscriber receives: the encoded Event.
fn message(notification: Notification, sequence: u64) -> (String, Bytes) {
    let tenant = match &notification.kind {
        Some(Kind::Change(change)) => change.tenant_id.clone(),
        _ => String::new(),
    };
    let event = graph_relay_log::wire::to_event(sequence, notification);
    (format!("graph.{tenant}"), Bytes::from(event.encode_to_vec()))
}

#[derive(Clone)]
pub struct CoreSink {
    client: async_nats::Client,
}

impl CoreSink {
    pub async fn connect(url: String) -> Result<Self, String> {
        Ok(Self { client: connect(&url).await? })
    }
}

impl Sink for CoreSink {
    /// Core NATS has no acknowledgement: publish, then flush so the batch has
    /// at least reached the server.
    async fn send(&self, batch: Vec<Notification>) -> Result<(), String> {
        for (i, notification) in batch.into_iter().enumerate() {
            let (subject, payload) = message(notification, i as u64);
            self.client.publish(subject, payload).await.map_err(|e| e.to_string())?;
        }
        self.client.flush().await.map_err(|e| e.to_string())
    }
}

#[derive(Clone)]
pub struct JetStreamSink {
    context: jetstream::Context,
}

impl JetStreamSink {
    /// Publishes into the stream [`NatsServer::create_stream`] made.
    pub async fn connect(url: String) -> Result<Self, String> {
        Ok(Self { context: jetstream::new(connect(&url).await?) })
    }
}

impl Sink for JetStreamSink {
    /// Publishes the batch and waits for every acknowledgement (stored).
    async fn send(&self, batch: Vec<Notification>) -> Result<(), String> {
        let mut acks = Vec::with_capacity(batch.len());
        for (i, notification) in batch.into_iter().enumerate() {
            let (subject, payload) = message(notification, i as u64);
            acks.push(self.context.publish(subject, payload).await.map_err(|e| e.to_string())?);
        }
        for ack in acks {
            ack.await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
