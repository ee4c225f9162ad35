//! CPU a subscriber catching up from the log spends deciding whether its
//! filter takes a stored event (`make bench`), three ways: the whole `Event`
//! decoded, the route read alone (`route::StoredRoute`), and the route from
//! the spans the log's group index keeps (`index`: read once per group, not
//! per subscriber), which is what subscribers do.
//! A selective subscriber pays this for every stored event it scans, most of
//! which it then drops.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use graph_relay_fanout::delivery::filter::Filter;
use graph_relay_log::route::StoredRoute;
use graph_relay_proto::v1::{notification::Kind, Event, Filter as FilterSpec};
use prost::Message;

/// The fan-out bench's ~1 KB Outlook notification, stored as an `Event`.
fn stored_event() -> Bytes {
    let Some(Kind::Change(change)) = graph_relay_bench::durable::notification(3, 42).kind else {
        unreachable!("the bench publishes change notifications")
    };
    let payload = graph_relay_proto::v1::event::Payload::Change(change);
    let event = Event { sequence: 42, payload: Some(payload), received_at_unix_ms: 1_795_000_000_000 };
    Bytes::from(event.encode_to_vec())
}

fn catch_up_filter(c: &mut Criterion) {
    let stored = stored_event();
    // Another tenant's filter: the event is scanned and dropped, the common case.
    let spec = FilterSpec { tenant_ids: vec!["another-tenant".into()], ..Default::default() };
    let filter = Filter::compile(Some(&spec)).unwrap();
    let mut group = c.benchmark_group("catch_up_filter");
    group.throughput(Throughput::Bytes(stored.len() as u64));
    group.bench_function("whole event decoded", |b| {
        b.iter(|| {
            let event = Event::decode(black_box(stored.clone())).unwrap();
            event.payload.as_ref().is_some_and(|payload| filter.matches(payload))
        })
    });
    group.bench_function("route read alone", |b| {
        b.iter(|| {
            let read = StoredRoute::read(black_box(stored.clone())).unwrap();
            read.route().unwrap().is_some_and(|route| filter.admits(&route))
        })
    });
    let spans = StoredRoute::read(stored.clone()).unwrap().spans(&stored).unwrap().unwrap();
    group.bench_function("route from the group index", |b| {
        b.iter(|| spans.route(black_box(&stored)).is_ok_and(|route| filter.admits(&route)))
    });
    group.finish();
}

criterion_group!(benches, catch_up_filter);
criterion_main!(benches);
