//! Child processes that die with their handle.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process in its own process group, with its output in a log file.
pub struct Process {
    child: Child,
    log: PathBuf,
    name: &'static str,
}

impl Process {
    /// Spawns `command` with stdout and stderr appended to `log`.
    pub fn spawn(name: &'static str, mut command: Command, log: &Path) -> Process {
        let out = File::options().create(true).append(true).open(log).expect("log file");
        let err = out.try_clone().expect("log file");
        use std::os::unix::process::CommandExt;
        command.stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Process { child, log: log.to_owned(), name }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`; returns the whole log.
    pub async fn wait_for_log(&mut self, needle: &str) -> String {
        self.wait_for_log_count(needle, 1).await
    }

    /// Waits until the log has a whole line containing `needle`; returns what
    /// follows `needle` on it, trimmed. (A log read mid-write can end in the
    /// middle of that line: parsing it then read an empty address.)
    pub async fn wait_for_line(&mut self, needle: &str) -> String {
        self.wait_for(needle, |text| {
            let whole = text.rfind('\n').map_or("", |end| &text[..end]);
            whole.lines().find_map(|line| line.split_once(needle).map(|(_, rest)| rest.trim().to_string()))
        })
        .await
    }

    /// Waits until the log contains `needle` at least `count` times.
    pub async fn wait_for_log_count(&mut self, needle: &str, count: usize) -> String {
        self.wait_for(needle, |text| (text.matches(needle).count() >= count).then(|| text.to_string())).await
    }

    /// Polls the log until `found` gets something from it; fails the test if
    /// the process exits or `crate::WAIT` passes first (`needle` names what
    /// was awaited).
    async fn wait_for<T>(&mut self, needle: &str, found: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + crate::WAIT;
        loop {
            let text = self.log_text();
            if let Some(value) = found(&text) {
                return value;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}) before logging {needle:?}:\n{}", self.name, tail(&text));
            }
            assert!(Instant::now() < deadline, "{} never logged {needle:?}:\n{}", self.name, tail(&text));
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits for the process to exit by itself; `None` if it has not within `limit`.
    pub async fn exited_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        None
    }

    /// The process id (also its process group's).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL to the whole group: a crash, not a shutdown.
    pub fn kill(&mut self) {
        self.signal_group(libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// SIGTERM, then SIGKILL if the group is still there after `grace`.
    pub fn stop(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        self.signal_group(libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.signal_group(libc::SIGKILL);
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        None
    }

    /// Sends `signal` to the process itself.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    fn signal_group(&self, signal: i32) {
        // SAFETY: kill(2) with a negative pid signals our child's own group.
        unsafe { libc::kill(-(self.child.id() as i32), signal) };
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
