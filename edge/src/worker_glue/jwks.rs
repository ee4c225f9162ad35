//! The Microsoft identity platform's signing keys, cached.
//!
//! Keys rotate daily, and fetching them on every request would add a round
//! trip to Graph's 3 s budget. So: keys live in the isolate (thread-local;
//! wasm is single-threaded) and in the Workers Cache API (survives isolate
//! restarts), for `JWKS_MAX_AGE_SECONDS` (default an hour). An unknown `kid`
//! forces a refetch, at most once per `JWKS_MIN_REFRESH_SECONDS` (default
//! 60). If the endpoint fails, the cached keys keep serving. Every fetch's
//! timeout comes from the request's budget (see `crate::budget`).

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{select, Either};
use worker::{console_error, Cache, Delay, Env, Fetch, Method, Request, Response};

use super::now_ms;
use crate::budget::Budget;
use crate::pipeline;
use crate::validation_tokens::Keys;

const DEFAULT_JWKS_URL: &str = "https://login.microsoftonline.com/common/discovery/v2.0/keys";
/// A fetch's own limit, when the request's budget has more left.
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
    /// Cached keys older than this are fetched again.
    max_age_ms: u64,
}

thread_local! {
    // Settings read once per isolate (see `config`).
    static SOURCE: OnceCell<Rc<JwksSource>> = const { OnceCell::new() };
}

impl JwksSource {
    /// The isolate's source, read from the settings on first use.
    pub(crate) fn of(env: &Env) -> Rc<JwksSource> {
        SOURCE.with(|cell| cell.get_or_init(|| Rc::new(Self::from_env(env))).clone())
    }

    fn from_env(env: &Env) -> Self {
        let url = env.var("GRAPH_JWKS_URL").map(|v| v.to_string()).unwrap_or_else(|_| DEFAULT_JWKS_URL.to_owned());
        let seconds = |name: &str, default: u64| {
            env.var(name).ok().and_then(|v| v.to_string().trim().parse::<u64>().ok()).unwrap_or(default)
        };
        let min_refresh_ms = seconds("JWKS_MIN_REFRESH_SECONDS", 60) * 1000;
        Self { url, min_refresh_ms, max_age_ms: seconds("JWKS_MAX_AGE_SECONDS", 3_600) * 1000 }
    }

    /// The keys this isolate holds, while fresh; never fetches (the quick
    /// route's source: without them, a request takes the full route).
    pub(crate) fn fresh(&self) -> Option<Rc<Keys>> {
        let (keys, fetched_at) = cached()?;
        (!pipeline::keys_are_stale(fetched_at, now_ms(), self.max_age_ms)).then_some(keys)
    }

    /// Cached keys, fetched when absent or stale.
    pub(crate) async fn keys(&self, budget: &Budget) -> Result<Rc<Keys>, String> {
        let now = now_ms();
        if let Some((keys, fetched_at)) = cached() {
            if !pipeline::keys_are_stale(fetched_at, now, self.max_age_ms) {
                return Ok(keys);
            }
        } else if let Some(keys) = self.read_cache_api().await {
            store(keys.clone(), now);
            return Ok(keys);
        }
        self.fetch_or_keep(budget).await
    }

    /// After an unknown `kid`: refetch unless we did so very recently;
    /// `None` when the budget leaves no time to (the caller answers 503:
    /// the kid may be new, so the token cannot be called bad yet).
    pub(crate) async fn refresh(&self, budget: &Budget) -> Option<Result<Rc<Keys>, String>> {
        match cached() {
            Some((keys, fetched_at)) if !pipeline::refetch_allowed(fetched_at, now_ms(), self.min_refresh_ms) => {
                Some(Ok(keys))
            }
            _ => {
                budget.step(now_ms(), FETCH_TIMEOUT)?;
                Some(self.fetch_or_keep(budget).await)
            }
        }
    }

    async fn fetch_or_keep(&self, budget: &Budget) -> Result<Rc<Keys>, String> {
        let fetched = match budget.step(now_ms(), FETCH_TIMEOUT) {
            Some(timeout) => self.fetch(timeout).await,
            None => Err("no time left in this request to fetch the signing keys".to_owned()),
        };
        match fetched {
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

    /// Fetches the keys; the whole exchange, body included, within `timeout`.
    async fn fetch(&self, timeout: Duration) -> Result<Rc<Keys>, String> {
        // The runtime's own `Request` parses the URL: `Fetch::Url` takes a
        // `url::Url`, and that crate with its IDNA tables was ~70 KB of the
        // wasm's gzip, for this one call.
        let request = Request::new(&self.url, Method::Get).map_err(|e| format!("GRAPH_JWKS_URL: {e}"))?;
        let request = Fetch::Request(request);
        let exchange = Box::pin(async {
            let mut response = request.send().await.map_err(|e| format!("fetching the JWKS: {e}"))?;
            if response.status_code() != 200 {
                return Err(format!("JWKS endpoint answered {}", response.status_code()));
            }
            response.text().await.map_err(|e| e.to_string())
        });
        let text = match select(exchange, Box::pin(Delay::from(timeout))).await {
            Either::Left((text, _)) => text?,
            Either::Right(_) => return Err(format!("JWKS endpoint gave no answer within {timeout:?}")),
        };
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
