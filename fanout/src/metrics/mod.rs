//! Prometheus metrics, served on `--metrics-listen` at `GET /metrics`.
//!
//! One process-wide set ([`get`]), like a `tracing` subscriber: the places
//! that count (ingest, delivery, decryption, the reconciler, the gRPC layer)
//! reach it without every constructor carrying a handle. Values that are a
//! state rather than an event (log size, subscriber lag) are read when a
//! scrape asks, through the refresher the server installs ([`on_scrape`]).
//!
//! Names follow Prometheus conventions: base units (`_seconds`, `_bytes`),
//! counters end in `_total`, and every label has a bounded set of values:
//! methods and codes from fixed lists, subscriber names from the subscribers
//! file, decryption failures by cause. Never a token, a subscription id or a
//! resource.
//!
//! # Layout
//! - this file: the metric families and their registry.
//! - `endpoint`: the HTTP server for `/metrics`.
//! - `grpc_layer`: a tower layer counting and timing every gRPC call.
//! - `streams`: the subscriber streams open now, for lag and catch-up.

mod endpoint;
pub mod grpc_layer;
pub mod streams;

use std::sync::{LazyLock, Mutex};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub use endpoint::serve;

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Sets what runs before each scrape to bring the state gauges up to date
/// (the server's log and subscriber streams); replaces any earlier one.
pub fn on_scrape(refresh: impl Fn(&Metrics) + Send + Sync + 'static) {
    *get().refresh.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(refresh));
}

/// Why a rich notification was delivered undecrypted.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum DecryptFailure {
    unknown_certificate,
    base64,
    data_key,
    key_length,
    signature,
    padding,
    not_json,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: DecryptFailure,
}

/// A subscriber by its name in the subscribers file.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubscriberLabel {
    pub subscriber: String,
}

/// The health of a wanted Graph subscription.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum SubscriptionHealth {
    /// On Graph, last reconciled without error.
    ok,
    /// On Graph, but the last renewal or check failed.
    failing,
    /// Not on Graph: creating it failed so far.
    not_created,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HealthLabel {
    pub health: SubscriptionHealth,
}

/// Every metric; fields are cheap handles (clones share the value).
pub struct Metrics {
    /// Notifications stored in the log.
    pub published: Counter,
    /// Events this replica copied from the shared log (`--log nats`).
    pub copied: Counter,
    /// Notifications a publish carried that the log already held.
    pub duplicates: Counter,
    /// A Publish call from receipt to answer (decryption and commit included).
    pub publish_seconds: Histogram,
    /// One durable group commit (redb's commit, with its fsync).
    pub commit_seconds: Histogram,
    pub log_bytes: Gauge,
    pub log_oldest_sequence: Gauge,
    pub log_last_sequence: Gauge,
    /// Open Subscribe streams, by subscriber.
    pub subscriber_streams: Family<SubscriberLabel, Gauge>,
    /// The most events one of the subscriber's streams has still to pass.
    pub subscriber_lag: Family<SubscriberLabel, Gauge>,
    /// The subscriber's streams reading from the log rather than live.
    pub subscriber_catching_up: Family<SubscriberLabel, Gauge>,
    /// `Gap` events sent to subscribers.
    pub gaps_sent: Counter,
    pub decryption_failures: Family<ReasonLabel, Counter>,
    pub graph_subscriptions: Family<HealthLabel, Gauge>,
    pub graph_created: Counter,
    pub graph_renewals: Counter,
    pub graph_failures: Counter,
    /// When the earliest renewal is due (0: none scheduled).
    pub graph_next_renewal: Gauge,
    /// 1 while this replica runs the reconciler (always 1 on the embedded log
    /// with a subscriptions file; with `--log nats`, on one replica at a time).
    pub reconciler_leader: Gauge,
    pub grpc: grpc_layer::GrpcMetrics,
    pub streams: streams::Streams,
    registry: Registry,
    refresh: Mutex<Option<Refresh>>,
}

/// Brings the state gauges up to date before a scrape.
type Refresh = Box<dyn Fn(&Metrics) + Send + Sync>;

impl Metrics {
    fn new() -> Self {
        let seconds = || Histogram::new(exponential_buckets(0.000_1, 2.0, 17));
        let metrics = Metrics {
            published: Counter::default(),
            duplicates: Counter::default(),
            copied: Counter::default(),
            publish_seconds: seconds(),
            commit_seconds: seconds(),
            log_bytes: Gauge::default(),
            log_oldest_sequence: Gauge::default(),
            log_last_sequence: Gauge::default(),
            subscriber_streams: Family::default(),
            subscriber_lag: Family::default(),
            subscriber_catching_up: Family::default(),
            gaps_sent: Counter::default(),
            decryption_failures: Family::default(),
            graph_subscriptions: Family::default(),
            graph_created: Counter::default(),
            graph_renewals: Counter::default(),
            graph_failures: Counter::default(),
            graph_next_renewal: Gauge::default(),
            reconciler_leader: Gauge::default(),
            grpc: grpc_layer::GrpcMetrics::default(),
            streams: streams::Streams::default(),
            registry: Registry::default(),
            refresh: Mutex::new(None),
        };
        metrics.registered()
    }

    fn registered(mut self) -> Self {
        let r = &mut self.registry;
        let p = "graph_relay_";
        r.register(
            format!("{p}notifications_published"),
            "Notifications stored in the log by this server's Publish",
            self.published.clone(),
        );
        r.register(
            format!("{p}notifications_duplicate"),
            "Notifications already in the log (a redelivery), not stored again",
            self.duplicates.clone(),
        );
        let copied = "Events this replica copied from the shared log (--log nats), its own included";
        r.register(format!("{p}shared_log_copied"), copied, self.copied.clone());
        let publish = "Publish calls from receipt to answer, decryption and durable commit included, in seconds";
        r.register(format!("{p}publish_duration_seconds"), publish, self.publish_seconds.clone());
        let commit = "Durable group commits of the log (one fsync each), in seconds";
        r.register(format!("{p}log_commit_duration_seconds"), commit, self.commit_seconds.clone());
        r.register(format!("{p}log_size_bytes"), "Bytes the stored events take", self.log_bytes.clone());
        let oldest = "The oldest sequence retention still keeps (0: the log is empty)";
        r.register(format!("{p}log_oldest_sequence"), oldest, self.log_oldest_sequence.clone());
        let last = "The last sequence stored";
        r.register(format!("{p}log_last_sequence"), last, self.log_last_sequence.clone());
        let streams = "Open Subscribe streams by subscriber";
        r.register(format!("{p}subscriber_streams"), streams, self.subscriber_streams.clone());
        let lag = "Events the subscriber's furthest-behind stream has still to pass";
        r.register(format!("{p}subscriber_lag_events"), lag, self.subscriber_lag.clone());
        let behind = "Subscribe streams catching up from the log rather than live";
        r.register(format!("{p}subscriber_catching_up_streams"), behind, self.subscriber_catching_up.clone());
        let gaps = "Gap events sent to subscribers (events retention removed before they were read)";
        r.register(format!("{p}gap_events_sent"), gaps, self.gaps_sent.clone());
        let decrypt = "Rich notifications delivered undecrypted, by cause";
        r.register(format!("{p}decryption_failures"), decrypt, self.decryption_failures.clone());
        let wanted = "Wanted Graph subscriptions by health";
        r.register(format!("{p}graph_subscriptions"), wanted, self.graph_subscriptions.clone());
        let created = "Graph subscriptions created (and re-created)";
        r.register(format!("{p}graph_subscriptions_created"), created, self.graph_created.clone());
        r.register(format!("{p}graph_renewals"), "Graph subscriptions renewed", self.graph_renewals.clone());
        let failures = "Graph calls of the reconciler that failed";
        r.register(format!("{p}graph_failures"), failures, self.graph_failures.clone());
        let next = "When the earliest renewal is due, in Unix seconds (0: none scheduled)";
        r.register(format!("{p}graph_next_renewal_timestamp_seconds"), next, self.graph_next_renewal.clone());
        let leader = "1 while this replica runs the reconciler (with --log nats, one replica at a time)";
        r.register(format!("{p}reconciler_leader"), leader, self.reconciler_leader.clone());
        self.grpc.register(r);
        self
    }

    /// The text exposition (OpenMetrics), state gauges refreshed first.
    pub fn render(&self) -> String {
        if let Some(refresh) = self.refresh.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            refresh(self);
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Counts one undecryptable rich notification.
    pub fn decryption_failed(&self, reason: DecryptFailure) {
        self.decryption_failures.get_or_create(&ReasonLabel { reason }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions_and_labels_are_bounded() {
        let metrics = Metrics::new();
        metrics.published.inc_by(3);
        metrics.decryption_failed(DecryptFailure::signature);
        metrics.subscriber_lag.get_or_create(&SubscriberLabel { subscriber: "billing".into() }).set(7);
        let text = metrics.render();
        assert!(text.contains("graph_relay_notifications_published_total 3\n"), "{text}");
        assert!(text.contains("graph_relay_decryption_failures_total{reason=\"signature\"} 1\n"), "{text}");
        assert!(text.contains("graph_relay_subscriber_lag_events{subscriber=\"billing\"} 7\n"), "{text}");
        assert!(text.contains("# TYPE graph_relay_log_commit_duration_seconds histogram"), "{text}");
        for line in text.lines().filter(|l| l.starts_with("# TYPE") && l.ends_with(" counter")) {
            let name = line.split(' ').nth(2).unwrap_or_default();
            assert!(text.contains(&format!("\n{name}_total")), "counter {name} is exposed as {name}_total");
        }
    }

    #[test]
    fn the_dashboard_and_the_docs_name_only_metrics_that_exist() {
        // Families show once they have a series.
        let metrics = Metrics::new();
        let label = SubscriberLabel { subscriber: "s".into() };
        for family in [&metrics.subscriber_streams, &metrics.subscriber_lag, &metrics.subscriber_catching_up] {
            family.get_or_create(&label).set(1);
        }
        metrics.decryption_failed(DecryptFailure::padding);
        metrics.graph_subscriptions.get_or_create(&HealthLabel { health: SubscriptionHealth::ok }).set(1);
        let text = metrics.render();
        let declared: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();
        let docs = [include_str!("../../../docs/grafana-dashboard.json"), include_str!("../../../docs/operations.md")];
        for doc in docs {
            for (at, _) in doc.match_indices("graph_relay_") {
                let name: String = doc[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                    .collect();
                let base = ["_total", "_bucket", "_count", "_sum"]
                    .iter()
                    .fold(name.as_str(), |n, s| n.strip_suffix(s).unwrap_or(n));
                assert!(declared.contains(&base), "{name} is not a metric of the fan-out");
            }
        }
    }
}
