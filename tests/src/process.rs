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
    /// Set once the child is reaped and what was left of its group killed.
    /// From then on its id is free for the kernel to give another process,
    /// maybe the leader of another test's group: nothing is signalled by it.
    reaped: bool,
}

impl Process {
    /// Spawns `command` with stdout and stderr appended to `log`.
    pub fn spawn(name: &'static str, mut command: Command, log: &Path) -> Process {
        let out = File::options().create(true).append(true).open(log).expect("log file");
        let err = out.try_clone().expect("log file");
        use std::os::unix::process::CommandExt;
        command.stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Process { child, log: log.to_owned(), name, reaped: false }
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
            if let Some(status) = self.exit_status() {
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
            if let Some(status) = self.exit_status() {
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
        self.exit_status().is_none()
    }

    /// SIGKILL to the whole group: a crash, not a shutdown.
    pub fn kill(&mut self) {
        self.signal_group(libc::SIGKILL);
        let _ = self.child.wait();
        self.reaped = true;
    }

    /// SIGTERM, then SIGKILL if the group is still there after `grace`.
    pub fn stop(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        self.signal_group(libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        None
    }

    /// Sends `signal` to the process itself, unless it was reaped.
    pub fn signal(&self, signal: i32) {
        if !self.reaped {
            // SAFETY: kill(2) on our own child's pid, not yet reaped.
            unsafe { libc::kill(self.child.id() as i32, signal) };
        }
    }

    fn signal_group(&self, signal: i32) {
        if !self.reaped {
            // SAFETY: kill(2) with a negative pid signals our child's own
            // group, whose id is ours while the child is not reaped.
            unsafe { libc::kill(-(self.child.id() as i32), signal) };
        }
    }

    /// How the child exited, if it has; the first time, what is left of its
    /// group is killed at once (its id stays reserved while any member
    /// lives, and the kernel cannot have handed it out again in between).
    fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.try_wait().ok().flatten()?;
        if !self.reaped {
            self.signal_group(libc::SIGKILL);
            self.reaped = true;
        }
        Some(status)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Spawns `sleep 30` in its own group until it gets the id `pid` (the
    /// kernel hands out the number after `ns_last_pid`, unless another
    /// thread or process takes it first).
    fn spawn_with_id(pid: u32, log: &Path) -> Process {
        for _ in 0..100 {
            std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())
                .expect("setting the next pid (needs root, as the test machine runs)");
            let mut sleeper = Command::new("sleep");
            sleeper.arg("30");
            let mut process = Process::spawn("sleep", sleeper, log);
            if process.id() == pid {
                return process;
            }
            process.kill();
        }
        panic!("no process got the id {pid} in 100 tries");
    }

    #[tokio::test]
    async fn a_reaped_child_is_never_signalled_again_as_its_id_may_be_another_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let mut gone = Process::spawn("true", Command::new("true"), &dir.path().join("true.log"));
        assert!(gone.exited_within(crate::WAIT).await.is_some(), "`true` exits");
        // Reaped, its id is free: a process started now may get it, and be
        // the leader of a group of that id.
        let mut successor = spawn_with_id(gone.id(), &dir.path().join("sleep.log"));
        gone.signal(libc::SIGTERM);
        drop(gone);
        assert!(!signalled(successor.id()), "the process that took the id was signalled");
        assert!(successor.is_running());
    }

    /// Whether process `pid` has a signal pending or is dead: kill(2) marks
    /// a signal pending before it returns, and it stays so until the
    /// process acts on it, here by dying.
    fn signalled(pid: u32) -> bool {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return true };
        let field =
            |name: &str| status.lines().find_map(|line| line.strip_prefix(name)).unwrap_or("").trim().to_owned();
        let pending = ["SigPnd:", "ShdPnd:"].iter().any(|name| !field(name).trim_start_matches('0').is_empty());
        pending || field("State:").starts_with(['Z', 'X'])
    }
}
