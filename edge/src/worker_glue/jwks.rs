//! The Microsoft identity platform's signing keys, cached.
//!
//! Keys rotate daily, and fetching them on every request would add a round
//! trip to Graph's 3 s budget. So: keys live in the isolate (thread-local;
//! wasm is single-threaded) and in the Workers Cache API (survives isolate
//! restarts), for an hour. An unknown `kid` forces a refetch, at most once per
//! `JWKS_MIN_REFRESH_SECONDS` (default 60). If the endpoint fails, the cached
//! keys keep serving.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{select, Either};
use worker::{console_error, Cache, Delay, Env, Fetch, Response};

use crate::validation_tokens::Keys;

const DEFAULT_JWKS_URL: &str = "https://login.microsoftonline.com/common/discovery/v2.0/keys";
const FRESH_FOR_MS: u64 = 3_600_000;
const FETCH_TIMEOUT: Duration = Duration::from_millis(1_500);

struct Cached {
    keys: Rc<Keys>,
    fetched_at_ms: u64,
}

thread_local! {
    static CACHED: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

pub(crate) struct JwksSource {
    url: String,
    min_refresh_ms: u64,
}

impl JwksSource {
    pub(crate) fn from_env(env: &Env) -> Self {
        let url = env.var("GRAPH_JWKS_URL").map(|v| v.to_string()).unwrap_or_else(|_| DEFAULT_JWKS_URL.to_owned());
        let min_refresh_seconds: u64 =
            env.var("JWKS_MIN_REFRESH_SECONDS").ok().and_then(|v| v.to_string().parse().ok()).unwrap_or(60);
        Self { url, min_refresh_ms: min_refresh_seconds * 1000 }
    }

    /// Cached keys, fetched when absent or stale.
    pub(crate) async fn keys(&self) -> Result<Rc<Keys>, String> {
        let now = now_ms();
        if let Some((keys, fetched_at)) = cached() {
            if now.saturating_sub(fetched_at) < FRESH_FOR_MS {
                return Ok(keys);
            }
        } else if let Some(keys) = self.read_cache_api().await {
            store(keys.clone(), now);
            return Ok(keys);
        }
        self.fetch_or_keep().await
    }

    /// After an unknown `kid`: refetch unless we did so very recently.
    pub(crate) async fn refresh(&self) -> Result<Rc<Keys>, String> {
        match cached() {
            Some((keys, fetched_at)) if now_ms().saturating_sub(fetched_at) < self.min_refresh_ms => Ok(keys),
            _ => self.fetch_or_keep().await,
        }
    }

    async fn fetch_or_keep(&self) -> Result<Rc<Keys>, String> {
        match self.fetch().await {
            Ok(keys) => Ok(keys),
            Err(e) => match cached() {
                Some((keys, _)) => {
                    console_error!("JWKS refresh failed ({e}); serving {} cached keys", keys.len());
                    Ok(keys)
                }
                None => Err(e),
            },
        }
    }

    async fn fetch(&self) -> Result<Rc<Keys>, String> {
        let request = Fetch::Url(self.url.parse().map_err(|e| format!("GRAPH_JWKS_URL: {e}"))?);
        let call = Box::pin(request.send());
        let mut response = match select(call, Box::pin(Delay::from(FETCH_TIMEOUT))).await {
            Either::Left((response, _)) => response.map_err(|e| format!("fetching the JWKS: {e}"))?,
            Either::Right(_) => return Err(format!("JWKS endpoint gave no answer within {FETCH_TIMEOUT:?}")),
        };
        if response.status_code() != 200 {
            return Err(format!("JWKS endpoint answered {}", response.status_code()));
        }
        let text = response.text().await.map_err(|e| e.to_string())?;
        let keys = Rc::new(Keys::from_jwks(&text)?);
        store(keys.clone(), now_ms());
        self.write_cache_api(&text).await;
        Ok(keys)
    }

    async fn read_cache_api(&self) -> Option<Rc<Keys>> {
        let mut response = Cache::default().get(self.url.as_str(), false).await.ok()??;
        let text = response.text().await.ok()?;
        Keys::from_jwks(&text).ok().map(Rc::new)
    }

    async fn write_cache_api(&self, text: &str) {
        let response = Response::builder()
            .with_header("content-type", "application/json")
            .and_then(|b| b.with_header("cache-control", "max-age=3600"))
            .map(|b| b.fixed(text.as_bytes().to_vec()));
        if let Ok(response) = response {
            if let Err(e) = Cache::default().put(self.url.as_str(), response).await {
                console_error!("could not cache the JWKS: {e}");
            }
        }
    }
}

fn cached() -> Option<(Rc<Keys>, u64)> {
    CACHED.with(|c| c.borrow().as_ref().map(|c| (c.keys.clone(), c.fetched_at_ms)))
}

fn store(keys: Rc<Keys>, fetched_at_ms: u64) {
    CACHED.with(|c| *c.borrow_mut() = Some(Cached { keys, fetched_at_ms }));
}

fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}
