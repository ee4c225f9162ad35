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
    /// How long the server's threads were ready to run but had no core,
    /// over the run, in cores (1.0 = one thread waiting all the time). On
    /// shared cores a latency tail is this wait, not work: it tells the two
    /// apart for every run. `None` where the kernel keeps no schedstat.
    pub server_waited: Option<f64>,
    /// The same for the bench's own threads (its subscribers' runtime and
    /// the run's publisher thread): the clients' side of the same cores.
    pub bench_waited: Option<f64>,
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

    /// How long the process's live threads have waited on a run queue so
    /// far, summed (`/proc/PID/task/*/schedstat`; a thread that has exited
    /// takes its share with it). `None` if no thread's could be read.
    pub fn run_queue_wait(&self) -> Option<Duration> {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.pid)).ok()?;
        tasks
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok())
            .filter_map(|schedstat| run_queue_wait(&schedstat))
            .reduce(|sum, waited| sum + waited)
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

/// The calling thread's run-queue wait so far: for a thread that will exit
/// before the run's end is read (the publisher's).
pub fn this_thread_run_queue_wait() -> Option<Duration> {
    run_queue_wait(&std::fs::read_to_string("/proc/thread-self/schedstat").ok()?)
}

/// The wait in a `schedstat` line: "time on a CPU, time waiting on a run
/// queue, timeslices", the times in ns. Missing or garbled is `None`: the
/// column then says nothing rather than something wrong.
fn run_queue_wait(schedstat: &str) -> Option<Duration> {
    schedstat.split_whitespace().nth(1)?.parse().ok().map(Duration::from_nanos)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_queue_wait_is_the_second_schedstat_field() {
        assert_eq!(run_queue_wait("1515975718 725784387 215\n"), Some(Duration::from_nanos(725_784_387)));
        assert_eq!(run_queue_wait("1515975718"), None);
        assert_eq!(run_queue_wait("a b c"), None);
    }

    #[test]
    fn a_busy_process_shows_the_wait_of_its_threads() {
        // A kernel without schedstat (CONFIG_SCHEDSTATS off) reports no wait
        // at all: there is nothing to measure, and the bench prints `-`.
        if this_thread_run_queue_wait().is_none() {
            eprintln!("skipped: this kernel keeps no /proc/thread-self/schedstat");
            return;
        }
        // Twice as many spinning threads as cores: they take turns, so the
        // process's threads pile up waiting time, and each spinner can read
        // its own share.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
        let spinners: Vec<_> = (0..threads)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                    this_thread_run_queue_wait()
                })
            })
            .collect();
        let me = ProcStats::new(std::process::id());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while me.run_queue_wait() < Some(Duration::from_millis(50)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let process = me.run_queue_wait();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let largest = spinners.into_iter().filter_map(|t| t.join().ok()).max().unwrap_or_default();
        assert!(
            process >= Some(Duration::from_millis(50)),
            "{threads} spinners on fewer cores waited only {process:?}"
        );
        assert!(largest > Some(Duration::ZERO), "a spinner reads its own wait");
        assert_eq!(ProcStats::new(u32::MAX).run_queue_wait(), None, "no such process");
    }
}
