//! The fan-out's durable log: resume, restart, retention gaps, slow
//! subscribers and de-duplication, over real gRPC against the real binary.

use graph_relay_proto::v1::{event::Payload, Filter, SubscribeRequest};
use graph_relay_tests::fanout::Fanout;
use graph_relay_tests::publisher::{changes, Publisher};
use graph_relay_tests::subscriber::{subscribe, try_subscribe, Subscriber};
use tonic::Code;

async fn resume(url: &str, after: u64) -> Subscriber {
    let request = SubscribeRequest { filter: Some(Filter::default()), after_sequence: Some(after) };
    try_subscribe(url, request).await.expect("resume accepted")
}

async fn sequences(subscriber: &mut Subscriber, count: usize) -> Vec<u64> {
    let mut sequences = Vec::with_capacity(count);
    for _ in 0..count {
        sequences.push(subscriber.next().await.sequence);
    }
    sequences
}

graph_relay_tests::on_both_logs! {
    async fn resuming_replays_then_goes_live_with_no_gap_and_no_duplicate() {
        let fanout = Fanout::start().await;
        let mut publisher = Publisher::connect(&fanout.url()).await;
        for batch in 0..10 {
            publisher.publish(changes("s", batch * 10..batch * 10 + 10)).await.unwrap();
        }
        // Resume from the middle while more is being published concurrently.
        let mut resumed = resume(&fanout.url(), 50).await;
        let url = fanout.url();
        let more = tokio::spawn(async move {
            let mut publisher = Publisher::connect(&url).await;
            for batch in 10..40 {
                publisher.publish(changes("s", batch * 10..batch * 10 + 10)).await.unwrap();
            }
        });
        let got = sequences(&mut resumed, 350).await;
        more.await.unwrap();
        assert_eq!(got, (51..=400).collect::<Vec<_>>());
    }

    async fn a_sigkilled_fanout_keeps_every_stored_event_and_its_sequences() {
        let mut fanout = Fanout::start().await;
        let mut publisher = Publisher::connect(&fanout.url()).await;
        let first = publisher.publish(changes("s", 0..10)).await.unwrap();
        assert_eq!((first.first_sequence, first.last_sequence, first.stored), (1, 10, 10));
        fanout.kill();
        fanout.restart().await;
        let mut publisher = Publisher::connect(&fanout.url()).await;
        let second = publisher.publish(changes("s", 10..20)).await.unwrap();
        assert_eq!((second.first_sequence, second.last_sequence), (11, 20), "sequences continue after a crash");
        let mut everything = resume(&fanout.url(), 0).await;
        assert_eq!(sequences(&mut everything, 20).await, (1..=20).collect::<Vec<_>>());
    }

    async fn a_cursor_older_than_retention_gets_an_explicit_gap_first() {
        // Room for about 20 of these small events.
        let fanout = Fanout::start_with(&["--retention-max-bytes", "3000"]).await;
        let mut publisher = Publisher::connect(&fanout.url()).await;
        for batch in 0..10 {
            publisher.publish(changes("s", batch * 10..batch * 10 + 10)).await.unwrap();
        }
        let mut late = resume(&fanout.url(), 0).await;
        let gap = late.next().await;
        let Some(Payload::Gap(range)) = &gap.payload else { panic!("a gap comes first, got {gap:?}") };
        assert_eq!(range.from_sequence, 1);
        assert!(range.to_sequence > 50 && range.to_sequence < 100, "{range:?}");
        assert_eq!(gap.sequence, range.to_sequence);
        let rest = sequences(&mut late, (100 - range.to_sequence) as usize).await;
        assert_eq!(rest, (range.to_sequence + 1..=100).collect::<Vec<_>>(), "then everything retained, in order");
    }

    async fn a_slow_subscriber_catches_up_from_the_log_while_a_fast_one_keeps_pace() {
        let mut fanout = Fanout::start_with(&["--subscriber-buffer", "8"]).await;
        let mut slow = subscribe(&fanout.url(), Filter::default()).await;
        let mut fast = subscribe(&fanout.url(), Filter::default()).await;
        let mut publisher = Publisher::connect(&fanout.url()).await;
        let total = 3000u64;
        for batch in 0..total / 100 {
            publisher.publish(changes("s", batch * 100..batch * 100 + 100)).await.unwrap();
        }
        // The fast subscriber gets everything while the slow one has read nothing.
        assert_eq!(sequences(&mut fast, total as usize).await, (1..=total).collect::<Vec<_>>());
        // The slow subscriber overflowed its live buffer and continues from the log.
        fanout.wait_for_log("subscriber lagged").await;
        // Then the slow one reads: every event exactly once, in order.
        assert_eq!(sequences(&mut slow, total as usize).await, (1..=total).collect::<Vec<_>>());
    }

    /// After a restart every subscriber resumes at once, and selective ones share
    /// the routes the first reader of each log group read (`fanout/src/index.rs`):
    /// each must still get exactly its own events, in order.
    async fn selective_subscribers_resuming_together_each_get_exactly_their_events() {
        let mut fanout = Fanout::start().await;
        let mut publisher = Publisher::connect(&fanout.url()).await;
        // Batch b (sequences 10b+1..=10b+10) goes to subscription b % 4.
        for batch in 0..40u64 {
            publisher.publish(changes(&format!("sub-{}", batch % 4), batch * 10..batch * 10 + 10)).await.unwrap();
        }
        fanout.restart().await;
        let mut resumed = Vec::new();
        for i in 0..8u64 {
            let filter = Filter { subscription_ids: vec![format!("SUB-{}", i % 4)], ..Default::default() };
            let request = SubscribeRequest { filter: Some(filter), after_sequence: Some(0) };
            resumed.push((i % 4, try_subscribe(&fanout.url(), request).await.expect("resume accepted")));
        }
        let reads = resumed.into_iter().map(|(subscription, mut subscriber)| {
            tokio::spawn(async move { (subscription, sequences(&mut subscriber, 100).await) })
        });
        for read in reads {
            let (subscription, got) = read.await.unwrap();
            let expected: Vec<u64> =
                (0..40u64).filter(|b| b % 4 == subscription).flat_map(|b| b * 10 + 1..=b * 10 + 10).collect();
            assert_eq!(got, expected, "subscription sub-{subscription}");
        }
    }

    async fn a_resent_batch_is_stored_once_and_reported_as_duplicates() {
        let fanout = Fanout::start().await;
        let mut everything = subscribe(&fanout.url(), Filter::default()).await;
        let mut publisher = Publisher::connect(&fanout.url()).await;
        let first = publisher.publish(changes("s", 0..5)).await.unwrap();
        let again = publisher.publish(changes("s", 0..5)).await.unwrap();
        assert_eq!((first.stored, first.duplicates), (5, 0));
        assert_eq!((again.stored, again.duplicates), (0, 5), "duplicates are success, not errors");
        let marker = publisher.publish(changes("marker", 99..100)).await.unwrap();
        let got = sequences(&mut everything, 6).await;
        assert_eq!(got, [1, 2, 3, 4, 5, marker.first_sequence], "nothing delivered twice");
        assert_eq!(marker.first_sequence, 6);
    }

    async fn a_cursor_beyond_the_log_is_refused() {
        let fanout = Fanout::start().await;
        let request = SubscribeRequest { filter: None, after_sequence: Some(7) };
        let status = try_subscribe(&fanout.url(), request).await.err().expect("refused");
        assert_eq!(status.code(), Code::OutOfRange);
        assert!(status.message().contains("beyond the last stored sequence 0"), "{}", status.message());
    }

    async fn with_a_log_key_nothing_readable_rests_on_disk_and_a_crash_loses_nothing() {
        let key_dir = tempfile::tempdir().unwrap();
        let key_file = key_dir.path().join("log.key");
        std::fs::write(&key_file, "5a".repeat(32)).unwrap();
        let mut fanout = Fanout::start_with(&["--log-key-file", key_file.to_str().unwrap()]).await;
        let mut publisher = Publisher::connect(&fanout.url()).await;
        publisher.publish(changes("sealed-subscription", 0..20)).await.unwrap();
        fanout.kill();
        let file = std::fs::read(fanout.data_dir().join("events.redb")).unwrap();
        assert!(!file.windows(19).any(|w| w == b"sealed-subscription"), "the log file holds the events in plaintext");
        fanout.restart().await;
        let mut everything = resume(&fanout.url(), 0).await;
        for expected in 1..=20 {
            let event = everything.next().await;
            let Some(Payload::Change(change)) = event.payload else { panic!("change expected, got {event:?}") };
            assert_eq!((event.sequence, change.subscription_id.as_str()), (expected, "sealed-subscription"));
        }
    }
}
