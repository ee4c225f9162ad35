//! Graph's `/subscriptions` API, with its answers sorted into what the
//! reconciler must do about them (recreate, adopt, back off, report).

use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::Value;

use super::catalog::Permission;
use super::credentials::{CredentialError, Credentials};
use super::listing::Listing;
pub use super::listing::Remote;

/// A Graph answer other than success, by what it means for the caller.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("404: the subscription no longer exists")]
    NotFound,
    #[error("409: {0}")]
    Conflict(String),
    #[error("403 quota: {0}")]
    Quota(String),
    /// 400 because the edge failed Graph's validation handshake (not
    /// deployed yet, or down): worth retrying with backoff, unlike other 400s.
    #[error("400 handshake: {0}")]
    Handshake(String),
    /// 429 and 5xx: try again after `retry_after` (from the header when given).
    #[error("{status}: {message} (retry after {retry_after:?})")]
    Throttled { status: u16, retry_after: Option<Duration>, message: String },
    /// 400/401/403: retrying the same request will not help.
    #[error("{status}: {message}")]
    Refused { status: u16, message: String },
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// The subscription list could not be trusted whole (see `listing`).
    #[error("subscription list: {0}")]
    BadList(String),
}

/// The body of `POST /subscriptions`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSubscription {
    pub change_type: String,
    pub notification_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle_notification_url: Option<String>,
    pub resource: String,
    pub expiration_date_time: String,
    pub client_state: String,
    pub include_resource_data: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_certificate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_certificate_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification_query_options: Option<String>,
    pub latest_supported_tls_version: &'static str,
}

pub struct GraphClient {
    base_url: String,
    http: reqwest::Client,
    credentials: Credentials,
}

/// A `Retry-After` value in either form HTTP allows (RFC 9110 10.2.3):
/// delay-seconds, or an HTTP-date (a date already past means "now").
/// `None` when it is neither, so the caller backs off on its own.
fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

impl GraphClient {
    pub fn new(base_url: &str, http: reqwest::Client, credentials: Credentials) -> GraphClient {
        GraphClient { base_url: base_url.trim_end_matches('/').to_string(), http, credentials }
    }

    async fn call(
        &self,
        permission: Permission,
        request: reqwest::RequestBuilder,
    ) -> Result<Option<Value>, GraphError> {
        let token = self.credentials.access_token(permission).await?;
        let response = request.bearer_auth(token).send().await?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(v, SystemTime::now()));
        let text = response.text().await.unwrap_or_default();
        if (200..300).contains(&status) {
            return Ok(serde_json::from_str(&text).ok());
        }
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(String::from))
            .unwrap_or(text);
        Err(match status {
            404 => GraphError::NotFound,
            409 => GraphError::Conflict(message),
            403 if message.to_ascii_lowercase().contains("quota") => GraphError::Quota(message),
            400 if message.to_ascii_lowercase().contains("validation request failed") => GraphError::Handshake(message),
            429 | 500..=599 => GraphError::Throttled { status, retry_after, message },
            _ => GraphError::Refused { status, message },
        })
    }

    fn parse(value: Option<Value>) -> Result<Remote, GraphError> {
        let value = value.unwrap_or_default();
        serde_json::from_value(value.clone()).map_err(|e| GraphError::Refused {
            status: 200,
            message: format!("unexpected subscription body {value}: {e}"),
        })
    }

    pub async fn create(&self, permission: Permission, body: &NewSubscription) -> Result<Remote, GraphError> {
        let request = self.http.post(format!("{}/subscriptions", self.base_url)).json(body);
        Self::parse(self.call(permission, request).await?)
    }

    pub async fn renew(&self, permission: Permission, id: &str, expiration: &str) -> Result<Remote, GraphError> {
        let body = serde_json::json!({ "expirationDateTime": expiration });
        let request = self.http.patch(format!("{}/subscriptions/{id}", self.base_url)).json(&body);
        Self::parse(self.call(permission, request).await?)
    }

    pub async fn reauthorize(&self, permission: Permission, id: &str) -> Result<(), GraphError> {
        let request = self.http.post(format!("{}/subscriptions/{id}/reauthorize", self.base_url));
        self.call(permission, request).await.map(drop)
    }

    pub async fn delete(&self, permission: Permission, id: &str) -> Result<(), GraphError> {
        let request = self.http.delete(format!("{}/subscriptions/{id}", self.base_url));
        self.call(permission, request).await.map(drop)
    }

    /// Every subscription of the app visible with `permission` (see
    /// `listing` for what is trusted of the answer).
    pub async fn list(&self, permission: Permission) -> Result<Listing, GraphError> {
        let mut url = format!("{}/subscriptions", self.base_url);
        let mut listing = Listing::default();
        loop {
            let page = self.call(permission, self.http.get(&url)).await?.unwrap_or_default();
            let next = listing.add_page(&page, &self.base_url).map_err(|e| GraphError::BadList(e.to_string()))?;
            match next {
                Some(next) => url = next,
                None => break,
            }
        }
        for problem in &listing.malformed {
            tracing::warn!("Graph's subscription list: skipped {problem}");
        }
        Ok(listing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Fri, 27 Nov 2026 22:00:00 GMT").unwrap();
        assert_eq!(retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after("Fri, 27 Nov 2026 22:01:30 GMT", now), Some(Duration::from_secs(90)));
        assert_eq!(retry_after("Fri, 27 Nov 2026 21:59:00 GMT", now), Some(Duration::ZERO), "already past");
        assert_eq!(retry_after("Friday, 27-Nov-26 22:00:10 GMT", now), Some(Duration::from_secs(10)), "RFC 850 form");
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-5", now), None);
    }
}
