//! A full disk does not wedge the fan-out: publishes are refused with
//! UNAVAILABLE (the edge retries), the server exits non-zero for its
//! supervisor, and once there is room again a restart serves and stores,
//! with everything acknowledged before still there.
//!
//! The disk is a real tmpfs of a few MiB, mounted by the test (it needs root,
//! as `make test` runs in CI; elsewhere it says so and skips).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use graph_relay_proto::v1::{event::Payload, SubscribeRequest};
use graph_relay_tests::fanout::Fanout;
use graph_relay_tests::publisher::{self, Publisher};
use graph_relay_tests::subscriber::subscribe_as;

/// A tmpfs mounted on a temporary directory, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mounted = mount(&["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"], dir.path());
        mounted.then_some(SmallDisk { dir })
    }

    fn grow(&self, size: &str) {
        assert!(mount(&["-o", &format!("remount,size={size}")], self.dir.path()), "remounting the tmpfs");
    }
}

fn mount(args: &[&str], at: &Path) -> bool {
    Command::new("mount").args(args).arg(at).status().is_ok_and(|status| status.success())
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_is_refused_then_survived_after_a_restart_with_nothing_acknowledged_lost() {
    let Some(disk) = SmallDisk::mount("4m") else {
        eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
        return;
    };
    let data_dir = disk.dir.path().join("data");
    let mut fanout = Fanout::start_on(Some(data_dir), &[]).await;
    let mut publisher = Publisher::connect(&fanout.url()).await;

    // ~4 KiB items until the disk is full: a few thousand at most.
    let mut acknowledged = Vec::new();
    let refusal = 'fill: {
        for batch in 0..400u64 {
            let mut notifications = publisher::changes("fill", batch * 20..(batch + 1) * 20);
            for n in &mut notifications {
                if let Some(graph_relay_proto::v1::notification::Kind::Change(change)) = &mut n.kind {
                    change.resource_data_json = format!(r#"{{"padding":"{}"}}"#, "x".repeat(4096));
                }
            }
            match publisher.publish(notifications).await {
                Ok(reply) => acknowledged.extend(reply.first_sequence..=reply.last_sequence),
                Err(status) => break 'fill status,
            }
        }
        panic!("the 4 MiB disk never filled");
    };
    assert_eq!(refusal.code(), tonic::Code::Unavailable, "{refusal}");
    assert!(!acknowledged.is_empty(), "some publishes succeeded before the disk filled");

    let status = fanout.exited_within(Duration::from_secs(30)).await.expect("the fan-out exits for its supervisor");
    assert!(!status.success(), "a non-zero exit tells the supervisor to restart it: {status}");

    disk.grow("64m");
    fanout.restart().await;
    let mut publisher = Publisher::connect(&fanout.url()).await;
    let after = publisher.publish(publisher::changes("after", 0..1)).await.expect("stores again");
    assert_eq!(after.stored, 1);

    let mut events = subscribe_as(
        &fanout.url(),
        graph_relay_tests::SUBSCRIBER_TOKEN,
        SubscribeRequest { filter: None, after_sequence: Some(0) },
    )
    .await
    .unwrap();
    let mut replayed = Vec::new();
    loop {
        let event = events.next().await;
        match &event.payload {
            Some(Payload::Change(change)) if change.subscription_id == "after" => break,
            Some(Payload::Change(_)) => replayed.push(event.sequence),
            other => panic!("unexpected {other:?}"),
        }
    }
    let missing: Vec<_> = acknowledged.iter().filter(|s| !replayed.contains(s)).collect();
    assert!(missing.is_empty(), "acknowledged before the fault and gone: {missing:?}");
}
