//! What a run measures, and reading a server process's CPU and memory.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Latencies in microseconds, 1 µs to 60 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// One configuration's outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub system: &'static str,
    /// Which repetition of the whole plan (`--rounds`), from 1.
    pub round: usize,
    pub subscribers: usize,
    pub selectivity: &'static str,
    pub load: &'static str,
    /// Publish calls the publisher could keep outstanding in this run.
    pub in_flight: usize,
    pub published: u64,
    pub delivered: u64,
    pub expected: u64,
    pub elapsed: Duration,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    /// A publish call to its answer (see `workload::Published::answers`).
    pub answer_p50_us: u64,
    pub answer_p99_us: u64,
    /// Server CPU over the run, in cores (1.0 = one core busy).
    pub server_cpu: f64,
    pub server_peak_rss_mb: f64,
}

impl Outcome {
    /// Notifications per second the system carried end to end: what was
    /// delivered, over the time until the last delivery. "50% of saturation"
    /// is half of this, not half of what the publisher got accepted: a system
    /// that takes publishes faster than it delivers (queueing them) would
    /// otherwise be measured at "50%" above what it can deliver.
    pub fn sustained_rate(&self) -> f64 {
        let delivered_share = self.delivered as f64 / self.expected.max(1) as f64;
        self.published as f64 * delivered_share / self.elapsed.as_secs_f64()
    }
}

impl Outcome {
    pub fn delivered_per_second(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64()
    }
}

/// A server process's counters from /proc.
pub struct ProcStats {
    pid: u32,
}

impl ProcStats {
    pub fn new(pid: u32) -> Self {
        Self { pid }
    }

    /// User + system CPU time so far.
    pub fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        // Fields after the parenthesised command name: utime is 14th, stime 15th overall.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<u64>().ok()).sum();
        // SAFETY: sysconf has no preconditions.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_millis(ticks * 1000 / per_second)
    }

    /// A `/proc/PID/status` field in kB (VmRSS, VmHWM).
    pub fn status_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.trim_start_matches(':').trim().strip_suffix(" kB")?.parse().ok())
            .unwrap_or(0)
    }
}

/// Raises the open-files limit: a thousand subscribers are a thousand sockets
/// on each side (the servers inherit the limit).
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain getrlimit/setrlimit on a stack value.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max.min(65_536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
