//! `graph-relay-bench fsync`: how long the disk under a directory takes to
//! make a write durable, with nothing of the relay in the way.
//!
//! Every publish to the relay waits for one `fdatasync` (group commit shares
//! it among the publishers queued at that moment), so the disk's sync time is
//! a floor under the relay's publish-to-deliver latency, and its tail shows
//! up whole in the relay's p99: while one sync stalls for 100 ms, every
//! publish behind it waits too. This probe appends a write the size of a
//! typical commit and syncs it, in a loop, the way the log's writer does, so
//! a run of it tells which share of a p99 belongs to the disk.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::measure;

/// What to measure.
pub struct Probe {
    /// A directory on the disk to measure (the probe's file is removed).
    pub dir: PathBuf,
    pub duration: Duration,
    /// Bytes written before each sync.
    pub write_bytes: usize,
    /// The file starts over at this size, as a log reusing freed pages
    /// writes inside a file that does not grow.
    pub file_bytes: u64,
    /// A sync at least this long is counted as a stall.
    pub stall: Duration,
}

/// What a probe saw.
pub struct Syncs {
    /// Each sync's time, in µs.
    pub latencies: Histogram<u64>,
    /// Syncs at least `Probe::stall` long.
    pub stalls: u64,
    pub slowest: Duration,
}

pub fn run(probe: Probe) -> Result<(), String> {
    let syncs = measure(&probe)?;
    let ms = |quantile: f64| syncs.latencies.value_at_quantile(quantile) as f64 / 1000.0;
    println!(
        "| directory | write before each sync | syncs | p50 | p99 | p99.9 | slowest | syncs ≥ {} ms |",
        probe.stall.as_millis()
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} KiB | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {} |",
        probe.dir.display(),
        probe.write_bytes / 1024,
        syncs.latencies.len(),
        ms(0.5),
        ms(0.99),
        ms(0.999),
        syncs.slowest.as_secs_f64() * 1000.0,
        syncs.stalls
    );
    Ok(())
}

/// Writes and syncs in a loop for `probe.duration`, in a file of its own
/// that is removed afterwards.
pub fn measure(probe: &Probe) -> Result<Syncs, String> {
    let file = tempfile::NamedTempFile::new_in(&probe.dir).map_err(|e| format!("{}: {e}", probe.dir.display()))?;
    let reopen = || OpenOptions::new().write(true).open(file.path()).map_err(|e| e.to_string());
    let mut writer = reopen()?;
    let block = vec![0x5a_u8; probe.write_bytes.max(1)];
    let mut syncs = Syncs { latencies: measure::histogram(), stalls: 0, slowest: Duration::ZERO };
    let mut written = 0_u64;
    let started = Instant::now();
    while started.elapsed() < probe.duration {
        if written >= probe.file_bytes {
            writer = reopen()?;
            written = 0;
        }
        writer.write_all(&block).map_err(|e| e.to_string())?;
        written += block.len() as u64;
        let syncing = Instant::now();
        writer.sync_data().map_err(|e| e.to_string())?;
        let took = syncing.elapsed();
        let _ = syncs.latencies.record(took.as_micros().max(1) as u64);
        syncs.stalls += u64::from(took >= probe.stall);
        syncs.slowest = syncs.slowest.max(took);
    }
    Ok(syncs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sync_is_counted_the_file_starts_over_and_nothing_is_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let probe = Probe {
            dir: dir.path().to_owned(),
            duration: Duration::from_millis(200),
            write_bytes: 4096,
            file_bytes: 8192,
            stall: Duration::ZERO,
        };
        let syncs = measure(&probe).unwrap();
        assert!(syncs.latencies.len() > 2, "the probe wrote past the file's size and started over");
        assert_eq!(syncs.stalls, syncs.latencies.len(), "a zero threshold counts every sync as a stall");
        assert!(syncs.slowest > Duration::ZERO);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the probe's file is removed");
    }

    #[test]
    fn a_directory_that_does_not_exist_is_named_in_the_error() {
        let probe = Probe {
            dir: "/nonexistent/graph-relay-probe".into(),
            duration: Duration::from_millis(10),
            write_bytes: 4096,
            file_bytes: 8192,
            stall: Duration::from_millis(15),
        };
        let error = measure(&probe).err().unwrap();
        assert!(error.starts_with("/nonexistent/graph-relay-probe: "), "{error}");
    }
}
