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

pub fn run(probe: Probe) -> Result<(), String> {
    let file = tempfile::NamedTempFile::new_in(&probe.dir).map_err(|e| format!("{}: {e}", probe.dir.display()))?;
    let mut writer = OpenOptions::new().write(true).open(file.path()).map_err(|e| e.to_string())?;
    let block = vec![0x5a_u8; probe.write_bytes.max(1)];
    let mut latencies = measure::histogram();
    let (mut written, mut stalls, mut slowest) = (0_u64, 0_u64, Duration::ZERO);
    let started = Instant::now();
    while started.elapsed() < probe.duration {
        if written >= probe.file_bytes {
            writer = OpenOptions::new().write(true).open(file.path()).map_err(|e| e.to_string())?;
            written = 0;
        }
        writer.write_all(&block).map_err(|e| e.to_string())?;
        written += block.len() as u64;
        let syncing = Instant::now();
        writer.sync_data().map_err(|e| e.to_string())?;
        let took = syncing.elapsed();
        let _ = latencies.record(took.as_micros().max(1) as u64);
        stalls += u64::from(took >= probe.stall);
        slowest = slowest.max(took);
    }
    let ms = |quantile: f64| latencies.value_at_quantile(quantile) as f64 / 1000.0;
    println!(
        "| directory | write before each sync | syncs | p50 | p99 | p99.9 | slowest | syncs ≥ {} ms |",
        probe.stall.as_millis()
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} KiB | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {} |",
        probe.dir.display(),
        probe.write_bytes / 1024,
        latencies.len(),
        ms(0.5),
        ms(0.99),
        ms(0.999),
        slowest.as_secs_f64() * 1000.0,
        stalls
    );
    Ok(())
}
