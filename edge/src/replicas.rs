//! Several fan-out replicas behind one edge: `FANOUT_URL` may list base
//! URLs separated by commas. Each call goes to the next replica in turn
//! (spreading the load), and moves on to another when one cannot take it
//! (no connection, no answer in time, or gRPC UNAVAILABLE: a replica that
//! is draining or lost its log). Any other answer is the answer: a replica
//! refusing the token would refuse it everywhere.
//!
//! A replica that failed is passed over for [`REST_MS`] while others are up,
//! so a dead one costs one failed try per isolate, not one per request. If
//! every replica failed recently they are all tried again anyway: the edge
//! never gives up on the fan-out on its own memory alone.
//!
//! Resending to another replica what the first may have stored is safe:
//! every item carries its delivery id, and the log stores a delivery once.

/// How long a replica that failed is tried only after the others.
pub const REST_MS: u64 = 10_000;
/// Most replicas one `FANOUT_URL` may list (each failed try costs time
/// inside Graph's 3 s).
pub const MAX_REPLICAS: usize = 8;

/// The fan-out base URLs of `FANOUT_URL`, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replicas {
    urls: Vec<String>,
}

impl Replicas {
    /// Parses a comma-separated list of `http://` or `https://` base URLs.
    pub fn parse(text: &str) -> Result<Self, String> {
        let urls: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(|url| url.trim_end_matches('/').to_owned())
            .collect();
        if urls.is_empty() {
            return Err("FANOUT_URL lists no URL".into());
        }
        if urls.len() > MAX_REPLICAS {
            return Err(format!("FANOUT_URL lists {} URLs; at most {MAX_REPLICAS}", urls.len()));
        }
        if let Some(position) = urls.iter().position(|url| !(url.starts_with("https://") || url.starts_with("http://")))
        {
            return Err(format!("FANOUT_URL entry {} is not an http:// or https:// URL", position + 1));
        }
        Ok(Self { urls })
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }
}

/// What one isolate remembers of the replicas: whose turn it is, and which
/// failed lately.
#[derive(Debug, Default)]
pub struct Health {
    /// The replica the next call starts with (round robin).
    next: usize,
    /// Per replica: tried only after the others until this time (Unix ms).
    resting_until: Vec<u64>,
}

impl Health {
    /// The order in which to try `count` replicas now: those not resting,
    /// starting with the one whose turn it is, then the resting ones.
    pub fn order(&mut self, count: usize, now_ms: u64) -> Vec<usize> {
        self.resting_until.resize(count, 0);
        let start = self.next % count.max(1);
        self.next = self.next.wrapping_add(1);
        let turn = (0..count).map(|offset| (start + offset) % count);
        let (up, resting): (Vec<usize>, Vec<usize>) = turn.partition(|&index| self.resting_until[index] <= now_ms);
        up.into_iter().chain(resting).collect()
    }

    /// Replica `index` could not take a call: it rests.
    pub fn failed(&mut self, index: usize, now_ms: u64) {
        if let Some(until) = self.resting_until.get_mut(index) {
            *until = now_ms + REST_MS;
        }
    }

    /// Replica `index` answered: it is up again.
    pub fn answered(&mut self, index: usize) {
        if let Some(until) = self.resting_until.get_mut(index) {
            *until = 0;
        }
    }
}

/// Why one replica's call failed, and whether another may take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    /// The replica could not take the call (transport, timeout,
    /// UNAVAILABLE): the next one is tried.
    pub try_another: bool,
}

impl Failure {
    pub fn unreachable(message: impl Into<String>) -> Self {
        Self { message: message.into(), try_another: true }
    }

    /// The fan-out's answer: only UNAVAILABLE (and a gateway's 502/503/504
    /// in front of it) sends the call elsewhere.
    pub fn answered(error: &crate::grpc_web::CallError) -> Self {
        use crate::grpc_web::CallError;
        let try_another = match error {
            CallError::Status { code, .. } => *code == UNAVAILABLE,
            CallError::Http(status) => matches!(status, 502..=504),
            CallError::Malformed(_) => false,
        };
        Self { message: error.to_string(), try_another }
    }
}

/// gRPC's UNAVAILABLE.
const UNAVAILABLE: u32 = 14;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc_web::CallError;

    #[test]
    fn a_list_of_urls_parses_in_order_and_bad_entries_are_named() {
        let replicas = Replicas::parse(" https://a.example/ , http://b.example:8080 ,").unwrap();
        assert_eq!(replicas.urls(), ["https://a.example", "http://b.example:8080"]);
        assert_eq!(
            Replicas::parse("https://a, ftp://b").unwrap_err(),
            "FANOUT_URL entry 2 is not an http:// or https:// URL"
        );
        assert_eq!(Replicas::parse(" , ").unwrap_err(), "FANOUT_URL lists no URL");
        let many = ["https://x"; MAX_REPLICAS + 1].join(",");
        assert!(Replicas::parse(&many).unwrap_err().contains("at most 8"));
    }

    #[test]
    fn calls_take_turns_across_the_replicas() {
        let mut health = Health::default();
        let firsts: Vec<usize> = (0..6).map(|_| health.order(3, 0)[0]).collect();
        assert_eq!(firsts, [0, 1, 2, 0, 1, 2]);
        assert_eq!(health.order(3, 0), [0, 1, 2], "every replica is in each order");
    }

    #[test]
    fn a_failed_replica_is_tried_last_until_it_has_rested_or_answered() {
        let mut health = Health::default();
        health.order(3, 0);
        health.failed(1, 1_000);
        // Replica 1's turn, but it rests: the others first, it last.
        assert_eq!(health.order(3, 2_000), [2, 0, 1]);
        assert_eq!(health.order(3, 2_000), [2, 0, 1]);
        assert_eq!(health.order(3, 1_000 + REST_MS), [0, 1, 2], "rested: back in turn");
        health.failed(0, 20_000);
        health.answered(0);
        assert_eq!(health.order(3, 20_001), [1, 2, 0], "answered: back in turn");
    }

    #[test]
    fn when_every_replica_failed_lately_all_are_still_tried() {
        let mut health = Health::default();
        for index in 0..2 {
            health.failed(index, 0);
        }
        assert_eq!(health.order(2, 1), [0, 1]);
    }

    #[test]
    fn only_a_replica_that_cannot_take_the_call_sends_it_elsewhere() {
        let status = |code| CallError::Status { code, message: "m".into() };
        assert!(Failure::answered(&status(14)).try_another, "UNAVAILABLE: draining or lost its log");
        assert!(!Failure::answered(&status(16)).try_another, "UNAUTHENTICATED would be refused everywhere");
        assert!(!Failure::answered(&status(3)).try_another, "INVALID_ARGUMENT too");
        assert!(Failure::answered(&CallError::Http(503)).try_another);
        assert!(!Failure::answered(&CallError::Http(401)).try_another);
        assert!(Failure::unreachable("fetch failed").try_another);
    }
}
