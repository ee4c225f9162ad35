//! Calling the edge as Graph does: the validation handshake, notification
//! POSTs with Graph's retry schedule, and the endpoint health Graph tracks
//! (docs/graph-protocol.md section 2): over 10% of responses slower than 3 s in
//! 10 minutes is "slow" (delayed 10 minutes), over 15% is "drop".

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::identity::random_token;
use super::Emulator;
use crate::graph::now_ms;

/// Graph's per-attempt timeout for notifications and handshakes.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// An answer slower than this counts against the endpoint.
const SLOW_ANSWER: Duration = Duration::from_secs(3);
const WINDOW_MS: u64 = 10 * 60 * 1000;
/// Graph gives up on a notification after this long.
const RETRY_FOR: Duration = Duration::from_secs(4 * 3600);
const SLOW_STATE_DELAY: Duration = Duration::from_secs(10 * 60);

/// One endpoint's record.
#[derive(Debug, Default, Serialize)]
pub struct Endpoint {
    pub attempts: u64,
    pub delivered: u64,
    pub failed_attempts: u64,
    pub retries: u64,
    /// Notifications not sent because the endpoint was in the drop state.
    pub dropped: u64,
    /// Notifications abandoned after 4 hours of retries.
    pub abandoned: u64,
    /// Acknowledgement latency of every attempt, in microseconds (last 10 minutes).
    #[serde(skip)]
    window: VecDeque<(u64, u64, bool)>,
}

/// What Graph would think of the endpoint right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Slow,
    Drop,
}

impl Endpoint {
    fn record(&mut self, latency: Duration, ok: bool) {
        let now = now_ms();
        self.attempts += 1;
        if ok {
            self.delivered += 1;
        } else {
            self.failed_attempts += 1;
        }
        let late = !ok && latency >= ATTEMPT_TIMEOUT || latency > SLOW_ANSWER;
        self.window.push_back((now, latency.as_micros() as u64, late));
        while self.window.front().is_some_and(|(at, _, _)| at + WINDOW_MS < now) {
            self.window.pop_front();
        }
    }

    pub fn health(&self) -> Health {
        let late = self.window.iter().filter(|(_, _, late)| *late).count();
        let total = self.window.len().max(1);
        match late * 100 / total {
            p if p > 15 => Health::Drop,
            p if p > 10 => Health::Slow,
            _ => Health::Healthy,
        }
    }

    /// Latency percentiles (ms) over the window: p50, p99, max.
    pub fn latency_ms(&self) -> (f64, f64, f64) {
        let mut micros: Vec<u64> = self.window.iter().map(|(_, l, _)| *l).collect();
        micros.sort_unstable();
        let at =
            |q: f64| micros.get(((micros.len() as f64 - 1.0) * q).round() as usize).map_or(0.0, |v| *v as f64 / 1000.0);
        (at(0.5), at(0.99), at(1.0))
    }
}

/// Every endpoint the emulator has called, by URL.
#[derive(Default)]
pub struct Stats {
    pub endpoints: HashMap<String, Endpoint>,
}

impl Stats {
    /// The record of `url`, made on first use.
    pub fn endpoint(&mut self, url: &str) -> &mut Endpoint {
        self.endpoints.entry(url.to_string()).or_default()
    }
}

/// `POST url?validationToken=...`: 200, text/plain, the decoded token, within 10 s.
pub async fn handshake(emulator: &Emulator, url: &str) -> Result<(), String> {
    // Graph's tokens contain spaces and colons: the endpoint must URL-decode.
    let token = format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        random_token(12)
    );
    let mut target = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    target.query_pairs_mut().append_pair("validationToken", &token);
    let response = emulator
        .http
        .post(target)
        .header("content-type", "text/plain; charset=utf-8")
        .send()
        .await
        .map_err(|e| format!("no answer within 10 s: {e}"))?;
    let status = response.status();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body = response.text().await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("answered {status}, not 200"));
    }
    if !content_type.starts_with("text/plain") {
        return Err(format!("answered content-type {content_type:?}, not text/plain"));
    }
    if body != token {
        return Err("the body is not the decoded validationToken".into());
    }
    Ok(())
}

/// The first attempt's outcome, for whoever triggered the notification.
#[derive(Debug, Serialize)]
pub struct Attempt {
    pub status: Option<u16>,
    pub latency_ms: f64,
    pub error: Option<String>,
    pub health: Health,
    /// Whether Graph would have dropped it instead (drop state).
    pub dropped: bool,
}

/// Delivers `body` to `url`, retrying in the background like Graph on a
/// non-2xx answer or a timeout; returns the first attempt.
pub async fn deliver(emulator: &Emulator, url: &str, body: Value) -> Attempt {
    let health = emulator.world().deliveries.endpoint(url).health();
    match health {
        Health::Drop => {
            emulator.world().deliveries.endpoint(url).dropped += 1;
            return Attempt { status: None, latency_ms: 0.0, error: None, health, dropped: true };
        }
        Health::Slow => {
            let (emulator, url) = (emulator.clone(), url.to_string());
            tokio::spawn(async move {
                tokio::time::sleep(SLOW_STATE_DELAY).await;
                retry_until_delivered(emulator, url, body, Instant::now()).await;
            });
            return Attempt {
                status: None,
                latency_ms: 0.0,
                error: Some("delayed 10 minutes (slow state)".into()),
                health,
                dropped: false,
            };
        }
        Health::Healthy => {}
    }
    let first = attempt(emulator, url, &body).await;
    if first.status.is_none_or(|s| !(200..300).contains(&s)) {
        tokio::spawn(retry_until_delivered(emulator.clone(), url.to_string(), body, Instant::now()));
    }
    first
}

async fn attempt(emulator: &Emulator, url: &str, body: &Value) -> Attempt {
    let started = Instant::now();
    let result = emulator.http.post(url).json(body).send().await;
    let latency = started.elapsed();
    let (status, error) = match result {
        Ok(response) => (Some(response.status().as_u16()), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let ok = status.is_some_and(|s| (200..300).contains(&s));
    let mut world = emulator.world();
    let endpoint = world.deliveries.endpoint(url);
    endpoint.record(latency, ok);
    let health = endpoint.health();
    Attempt { status, latency_ms: latency.as_secs_f64() * 1000.0, error, health, dropped: false }
}

/// Exponential backoff from the configured base, for up to 4 hours.
async fn retry_until_delivered(emulator: Emulator, url: String, body: Value, since: Instant) {
    let mut delay = emulator.config.retry_base_delay;
    loop {
        tokio::time::sleep(delay).await;
        if since.elapsed() > RETRY_FOR {
            emulator.world().deliveries.endpoint(&url).abandoned += 1;
            return;
        }
        emulator.world().deliveries.endpoint(&url).retries += 1;
        let outcome = attempt(&emulator, &url, &body).await;
        if outcome.status.is_some_and(|s| (200..300).contains(&s)) {
            return;
        }
        delay = (delay * 2).min(Duration::from_secs(3600));
    }
}
