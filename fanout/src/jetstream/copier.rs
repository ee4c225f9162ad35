//! Reading the shared stream once per replica, into the replica's copy.
//!
//! One ordered consumer (ephemeral, flow-controlled, recreated by the
//! client after a lost connection or a missed message) reads the stream
//! from the copy's head on. Messages are taken in runs of whatever has
//! arrived, opened, prepared as the embedded writer would (encoded once,
//! redacted copy), and handed to the single writer, which stores them under
//! the stream's sequences and dispatches them to live subscribers. The
//! writer's queue is bounded, so a slow disk slows the reading, never the
//! memory.
//!
//! The copy is a cache of the stream: a replica's data directory can be
//! wiped and is filled again from the stream on the next start, from the
//! stream's first sequence on.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use futures_util::StreamExt;
use graph_relay_log::prepared::Prepared;
use graph_relay_log::seal;
use graph_relay_log::Copied;
use graph_relay_proto::v1::Notification;
use prost::Message;

use super::SharedLog;
use crate::ingest::Ingest;

/// Messages handed to the writer at once, at most.
const RUN: usize = 512;
/// Waits between attempts to read the stream again after it failed.
const RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("this replica's copy ends at sequence {copy_head} but the stream {stream} ends at {stream_head}: the data directory belongs to another stream (or the stream was recreated); move it away to copy the stream afresh")]
    CopyAhead { stream: String, copy_head: u64, stream_head: u64 },
}

/// Checks that `store` is a copy of this stream (or makes a new log one)
/// before serving from it: a copy of another stream, an embedded log, or a
/// copy ahead of the stream would serve sequences the stream gives to other
/// events.
pub async fn check(shared: &SharedLog, store: &graph_relay_log::Store) -> Result<(), Box<dyn std::error::Error>> {
    let started = std::time::Instant::now();
    let stream = loop {
        match shared.context.get_stream(&shared.options.stream).await {
            Ok(stream) => break stream,
            Err(e) if started.elapsed() < super::STARTUP_PATIENCE => {
                tracing::warn!("JetStream stream {}: {e}; trying again", shared.options.stream);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let info = stream.cached_info();
    store.claim_copy(identity(&shared.options.stream, info.created.unix_timestamp_nanos()))?;
    let (copy_head, stream_head) = (store.next_sequence()? - 1, info.state.last_sequence);
    if copy_head > stream_head {
        let stream = shared.options.stream.clone();
        return Err(CopyError::CopyAhead { stream, copy_head, stream_head }.into());
    }
    if copy_head < stream_head {
        catch_up(shared, &stream, store, stream_head).await?;
    }
    Ok(())
}

/// Copies the stream up to `until` before the replica serves, so a replica
/// that announces itself serves what the stream held when it started (a
/// subscriber joining live is not handed history as new). A read that
/// fails (a NATS node restarting, a stream leader being elected) is tried
/// again from the copy's head for as long as the start is patient.
async fn catch_up(
    shared: &SharedLog,
    stream: &async_nats::jetstream::stream::Stream,
    store: &graph_relay_log::Store,
    until: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let started = std::time::Instant::now();
    loop {
        let head = store.next_sequence()? - 1;
        tracing::info!(from = head + 1, until, "copying the shared log before serving");
        match copy_until(shared, stream, store, head, until).await {
            Ok(()) => return Ok(()),
            Err(CatchUpError::Nats(e)) if started.elapsed() < super::STARTUP_PATIENCE => {
                tracing::warn!("reading the shared log before serving: {e}; again in {RETRY:?}");
                tokio::time::sleep(RETRY).await;
            }
            Err(CatchUpError::Nats(e)) => return Err(e.into()),
            Err(CatchUpError::Log(e)) => return Err(e.into()),
        }
    }
}

/// Why one attempt to catch up stopped: NATS errors are worth another try,
/// the copy's own errors are not.
enum CatchUpError {
    Nats(String),
    Log(graph_relay_log::LogError),
}

async fn copy_until(
    shared: &SharedLog,
    stream: &async_nats::jetstream::stream::Stream,
    store: &graph_relay_log::Store,
    head: u64,
    until: u64,
) -> Result<(), CatchUpError> {
    let nats = |e: &dyn std::fmt::Display| CatchUpError::Nats(e.to_string());
    let config = OrderedConfig {
        deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: head + 1 },
        filter_subject: shared.subject.clone(),
        ..Default::default()
    };
    let consumer = stream.create_consumer(config).await.map_err(|e| nats(&e))?;
    let mut messages = consumer.messages().await.map_err(|e| nats(&e))?;
    let mut run = Vec::with_capacity(RUN);
    let mut last = head;
    while last < until {
        let Some(message) = messages.next().await else { return Err(nats(&"the stream's consumer ended")) };
        let event = copied(shared, message.map_err(|e| nats(&e))?).map_err(|e| nats(&e))?;
        last = event.sequence;
        run.push(event);
        if run.len() == RUN || last >= until {
            let events = std::mem::take(&mut run);
            tokio::task::block_in_place(|| store.append_copied(events, crate::ingest::now_ms()))
                .map_err(CatchUpError::Log)?;
        }
    }
    Ok(())
}

/// A stream's identity: its name and when it was created, so a stream
/// deleted and created again under the same name is another one.
fn identity(name: &str, created_nanos: i128) -> u64 {
    use sha2::{Digest, Sha256};
    let digest =
        Sha256::new().chain_update(name).chain_update([0]).chain_update(created_nanos.to_be_bytes()).finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// Copies the stream into the log behind `ingest` until the writer stops;
/// a failed read is logged and retried from the copy's head.
pub async fn run(shared: SharedLog, ingest: Ingest) {
    loop {
        match copy(&shared, &ingest).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(from = ingest.head() + 1, "reading the shared log: {e}; again in {RETRY:?}");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// One ordered consumer from the copy's head on; `Ok` once the writer is gone.
async fn copy(shared: &SharedLog, ingest: &Ingest) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let stream = shared.context.get_stream(&shared.options.stream).await?;
    let start_sequence = ingest.head() + 1;
    let config = OrderedConfig {
        deliver_policy: DeliverPolicy::ByStartSequence { start_sequence },
        filter_subject: shared.subject.clone(),
        ..Default::default()
    };
    let mut messages = stream.create_consumer(config).await?.messages().await?;
    tracing::info!(from = start_sequence, "copying the shared log");
    while let Some(first) = messages.next().await {
        let mut run = vec![copied(shared, first?)?];
        while run.len() < RUN {
            match futures_util::FutureExt::now_or_never(messages.next()) {
                Some(Some(message)) => run.push(copied(shared, message?)?),
                _ => break,
            }
        }
        if !ingest.copy(run).await {
            return Ok(());
        }
    }
    Err("the stream's consumer ended".into())
}

/// One message as the copy stores it. A message that does not open (sealed
/// with a key this replica lacks) or decode is stored without a payload
/// under its sequence, so the copy's sequences stay the stream's, no filter
/// takes it, and the error is logged with the sequence.
fn copied(
    shared: &SharedLog,
    message: async_nats::jetstream::Message,
) -> Result<Copied, Box<dyn std::error::Error + Send + Sync>> {
    let info = message.info()?;
    let (sequence, published) = (info.stream_sequence, info.published);
    let stored_at_ms = u64::try_from(published.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let notification = seal::open_message(shared.keys.as_deref(), &message.payload)
        .map_err(|e| e.to_string())
        .and_then(|plain| Notification::decode(plain.as_ref()).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| {
            tracing::error!(sequence, "a message of the shared log is unreadable ({e}); subscribers get it empty");
            Notification::default()
        });
    Ok(Copied { sequence, stored_at_ms, prepared: Prepared::of(&notification) })
}
