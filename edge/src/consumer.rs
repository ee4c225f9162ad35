//! The queue consumer's decisions, in plain Rust over small traits: forward
//! each message as it is; ack what was stored; after one failure retry the
//! rest of the batch without trying (the fan-out is most likely down, and
//! each try would wait for a timeout); every retry waits as long as the
//! message has already waited (`pipeline::retry_delay_seconds`).

use crate::pipeline::retry_delay_seconds;

/// How long failed messages wait: from `base_seconds`, doubling, up to
/// `max_seconds` (`RETRY_BASE_DELAY_SECONDS`, `RETRY_MAX_DELAY_SECONDS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base_seconds: u32,
    pub max_seconds: u32,
}

/// One message of a batch, as the platform hands it over.
pub trait Message {
    fn id(&self) -> String;
    /// Seconds since the message was first queued.
    fn age_seconds(&self) -> u64;
    /// Its body: an encoded `PublishRequest`, or `None` if it is not bytes.
    fn body(&self) -> Option<Vec<u8>>;
    fn ack(&self);
    fn retry_in(&self, seconds: u32);
}

/// Where messages go, and where the consumer says what it did.
// The Worker is single-threaded: its futures are not Send, and need not be.
#[allow(async_fn_in_trait)]
pub trait Forwarder {
    /// Whether it can forward at all (its settings are complete); the
    /// problem, named, when not.
    fn ready(&self) -> Result<(), String>;
    /// Publishes one message's `PublishRequest`; a summary for the log.
    async fn forward(&self, request: Vec<u8>) -> Result<String, String>;
    fn log(&self, line: &str);
    fn log_error(&self, line: &str);
}

/// Handles one batch.
pub async fn consume<F: Forwarder, M: Message>(forwarder: &F, messages: &[M], policy: RetryPolicy) {
    if let Err(problem) = forwarder.ready() {
        forwarder.log_error(&format!("queue consumer misconfigured, retrying the batch later: {problem}"));
        for message in messages {
            message.retry_in(policy.max_seconds);
        }
        return;
    }
    let mut failed = false;
    for message in messages {
        let outcome = match (failed, message.body()) {
            (true, _) => Err("an earlier message of this batch failed".to_owned()),
            (false, None) => Err("message body is not bytes".to_owned()),
            (false, Some(body)) => forwarder.forward(body).await,
        };
        match outcome {
            Ok(summary) => {
                message.ack();
                forwarder.log(&format!("queue: forwarded message {} ({summary})", message.id()));
            }
            Err(e) => {
                failed = true;
                let delay = retry_delay_seconds(message.age_seconds(), policy.base_seconds, policy.max_seconds);
                forwarder
                    .log_error(&format!("queue: message {} not forwarded ({e}); retrying in {delay}s", message.id()));
                message.retry_in(delay);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use super::*;

    struct Queued {
        id: u32,
        age: u64,
        acked: Cell<bool>,
        retried_in: Cell<Option<u32>>,
    }

    impl Queued {
        fn new(id: u32, age: u64) -> Self {
            Self { id, age, acked: Cell::new(false), retried_in: Cell::new(None) }
        }
    }

    impl Message for Queued {
        fn id(&self) -> String {
            self.id.to_string()
        }
        fn age_seconds(&self) -> u64 {
            self.age
        }
        fn body(&self) -> Option<Vec<u8>> {
            Some(vec![self.id as u8])
        }
        fn ack(&self) {
            self.acked.set(true);
        }
        fn retry_in(&self, seconds: u32) {
            self.retried_in.set(Some(seconds));
        }
    }

    /// Fails the message whose body is `failing`; records every try.
    struct Fanout {
        failing: u8,
        tried: RefCell<Vec<u8>>,
        configured: bool,
    }

    impl Forwarder for Fanout {
        fn ready(&self) -> Result<(), String> {
            if self.configured {
                Ok(())
            } else {
                Err("FANOUT_URL is not set".into())
            }
        }
        async fn forward(&self, request: Vec<u8>) -> Result<String, String> {
            self.tried.borrow_mut().push(request[0]);
            if request[0] == self.failing {
                Err("the fan-out answered UNAVAILABLE".into())
            } else {
                Ok("1 stored".into())
            }
        }
        fn log(&self, _: &str) {}
        fn log_error(&self, _: &str) {}
    }

    fn run(future: impl std::future::Future<Output = ()>) {
        let mut future = std::pin::pin!(future);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(future.as_mut().poll(&mut context).is_ready(), "the fakes never wait");
    }

    const POLICY: RetryPolicy = RetryPolicy { base_seconds: 5, max_seconds: 300 };

    #[test]
    fn after_one_failure_the_rest_is_retried_without_trying() {
        let messages = [Queued::new(1, 0), Queued::new(2, 40), Queued::new(3, 0)];
        let fanout = Fanout { failing: 2, tried: RefCell::default(), configured: true };
        run(consume(&fanout, &messages, POLICY));
        assert_eq!(*fanout.tried.borrow(), [1, 2], "the third was not tried");
        assert!(messages[0].acked.get() && messages[0].retried_in.get().is_none());
        assert_eq!(messages[1].retried_in.get(), Some(40), "it waited 40 s, so it waits 40 s more");
        assert_eq!((messages[2].acked.get(), messages[2].retried_in.get()), (false, Some(5)));
    }

    #[test]
    fn without_a_forwarder_every_message_waits_the_longest_delay() {
        let messages = [Queued::new(1, 0), Queued::new(2, 0)];
        let fanout = Fanout { failing: 0, tried: RefCell::default(), configured: false };
        run(consume(&fanout, &messages, POLICY));
        assert!(messages.iter().all(|m| !m.acked.get() && m.retried_in.get() == Some(300)));
        assert!(fanout.tried.borrow().is_empty());
    }
}
