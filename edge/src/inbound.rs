//! What the edge answers to an HTTP request, decided without Worker types.
//!
//! The Worker glue feeds the request's parts through these steps in order
//! (route, handshake, headers, body) and either sends the [`Reply`] a step
//! returns or forwards the accepted [`Batch`]. Every refusal is a specific
//! status with a short plain-text reason.

use crate::client_state::ClientStates;
use crate::collection::{self, Batch, BodyError};
use crate::delivery::RequestId;
use crate::handshake;

/// The public routes of the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `notificationUrl`: change notifications.
    Notifications,
    /// `lifecycleNotificationUrl`: lifecycle notifications.
    Lifecycle,
    /// Liveness for load balancers and tests.
    Health,
    /// Operator: list the parked dead letters (needs `ADMIN_TOKEN`).
    DeadLetters,
    /// Operator: put the parked dead letters back on the queue.
    ReplayDeadLetters,
    /// Operator: list batches refused for failed validationTokens.
    Quarantine,
}

impl Route {
    pub fn name(self) -> &'static str {
        match self {
            Route::Notifications => "notifications",
            Route::Lifecycle => "lifecycle",
            Route::Health => "healthz",
            Route::DeadLetters => "dead-letters",
            Route::ReplayDeadLetters => "dead-letters-replay",
            Route::Quarantine => "quarantine",
        }
    }
}

/// A plain-text answer. Everything the edge says is `text/plain`, so nothing
/// reflected (validation tokens above all) can ever be rendered as HTML.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    /// Set on 405, as HTTP requires.
    pub allow: Option<&'static str>,
}

impl Reply {
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self { status, body: body.into(), allow: None }
    }

    /// Graph's acknowledgement: delivered, stored, nothing more to say.
    pub fn accepted() -> Self {
        Self::text(202, "")
    }
}

/// `GET /healthz`: 200 `ok` when every required setting is usable, else a
/// 503 naming each problem (never a value), so a deploy with a secret
/// missing shows at its first health check instead of at Graph's first
/// notification.
pub fn health(problems: &[String]) -> Reply {
    if problems.is_empty() {
        return Reply::text(200, "ok");
    }
    Reply::text(503, format!("misconfigured:\n{}\n", problems.join("\n")))
}

/// The path and the raw query of an absolute request URL as the runtime
/// hands it over (`https://host/path?query#fragment`): routing needs no
/// more than these two slices, so no URL is parsed into parts per request.
pub fn path_and_query(url: &str) -> (&str, &str) {
    // A window scan: `str::find` with a string pattern sets up a two-way
    // searcher, which sampled at ~1.5 µs per request in the Worker.
    let scheme_end = url.as_bytes().windows(3).position(|window| window == b"://");
    let after_scheme = scheme_end.map_or(url, |at| &url[at + 3..]);
    let target = &after_scheme[after_scheme.find(['/', '?', '#']).unwrap_or(after_scheme.len())..];
    let target = target.split('#').next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    (if path.is_empty() { "/" } else { path }, query)
}

/// Maps method and path to a route, or to a 404/405.
pub fn route(method: &str, path: &str) -> Result<Route, Reply> {
    let (route, allowed) = match path {
        "/graph/notifications" => (Route::Notifications, "POST"),
        "/graph/lifecycle" => (Route::Lifecycle, "POST"),
        "/healthz" => (Route::Health, "GET"),
        "/admin/dead-letters" => (Route::DeadLetters, "GET"),
        "/admin/dead-letters/replay" => (Route::ReplayDeadLetters, "POST"),
        "/admin/quarantine" => (Route::Quarantine, "GET"),
        _ => {
            return Err(Reply::text(404, format!("no route {path}: use POST /graph/notifications or /graph/lifecycle")))
        }
    };
    if method.eq_ignore_ascii_case(allowed) || (allowed == "GET" && method.eq_ignore_ascii_case("HEAD")) {
        return Ok(route);
    }
    Err(Reply { allow: Some(allowed), ..Reply::text(405, format!("{method} is not allowed on {path}: use {allowed}")) })
}

/// Answers Graph's validation handshake, if the query holds one.
pub fn handshake(query: &str) -> Option<Reply> {
    handshake::validation_token(query).map(|token| match token {
        Ok(token) => Reply::text(200, token),
        Err(e) => Reply::text(400, e.to_string()),
    })
}

/// Refuses a notification POST by its headers, before its body is read.
pub fn check_headers(content_type: Option<&str>, content_length: Option<&str>) -> Result<(), Reply> {
    let media_type = content_type.unwrap_or("").split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(Reply::text(415, "content-type must be application/json"));
    }
    if let Some(length) = content_length.and_then(|l| l.trim().parse::<u64>().ok()) {
        if length > collection::MAX_BODY_BYTES as u64 {
            return Err(too_large());
        }
    }
    Ok(())
}

/// Parses and validates the body, or says why it cannot be used.
pub fn accept_body(
    body: &[u8],
    client_states: &ClientStates,
    received_at_unix_ms: i64,
    request: &RequestId,
) -> Result<Batch, Reply> {
    collection::parse(body, client_states, received_at_unix_ms, request).map_err(|e| match e {
        BodyError::TooLarge => too_large(),
        other => Reply::text(400, other.to_string()),
    })
}

fn too_large() -> Reply {
    Reply::text(413, format!("body is larger than {} bytes", collection::MAX_BODY_BYTES))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_refuses_by_method_and_path() {
        assert_eq!(route("POST", "/graph/notifications"), Ok(Route::Notifications));
        assert_eq!(route("POST", "/graph/lifecycle"), Ok(Route::Lifecycle));
        assert_eq!(route("GET", "/healthz"), Ok(Route::Health));
        assert_eq!(health(&[]), Reply::text(200, "ok"));
        let problems = ["CLIENT_STATES is not set".to_owned(), "FANOUT_TOKEN is not set".to_owned()];
        assert_eq!(
            health(&problems),
            Reply::text(503, "misconfigured:\nCLIENT_STATES is not set\nFANOUT_TOKEN is not set\n")
        );
        assert_eq!(route("GET", "/admin/dead-letters"), Ok(Route::DeadLetters));
        assert_eq!(route("POST", "/admin/dead-letters/replay"), Ok(Route::ReplayDeadLetters));
        let wrong_method = route("GET", "/graph/notifications").unwrap_err();
        assert_eq!((wrong_method.status, wrong_method.allow), (405, Some("POST")));
        assert_eq!(route("POST", "/healthz").unwrap_err().status, 405);
        assert_eq!(route("POST", "/graph").unwrap_err().status, 404);
    }

    #[test]
    fn the_path_and_query_come_out_of_the_runtime_url() {
        let cases = [
            (
                "https://edge.example/graph/notifications?validationToken=a%2Fb",
                ("/graph/notifications", "validationToken=a%2Fb"),
            ),
            ("http://127.0.0.1:8787/healthz", ("/healthz", "")),
            ("https://edge.example", ("/", "")),
            ("https://edge.example?x=1", ("/", "x=1")),
            ("https://edge.example/graph/lifecycle?a=1&b=2#frag", ("/graph/lifecycle", "a=1&b=2")),
            ("https://edge.example/p#frag?not-a-query", ("/p", "")),
            ("https://edge.example/graph/notifications?", ("/graph/notifications", "")),
        ];
        for (url, expected) in cases {
            assert_eq!(path_and_query(url), expected, "{url}");
        }
    }

    #[test]
    fn handshake_reflects_the_decoded_token_as_text() {
        assert_eq!(handshake("validationToken=a%2Fb+c"), Some(Reply::text(200, "a/b c")));
        assert_eq!(handshake("validationToken=").map(|r| r.status), Some(400));
        assert_eq!(handshake("other=1"), None);
    }

    #[test]
    fn checks_content_type_and_declared_length() {
        assert!(check_headers(Some("application/json"), None).is_ok());
        assert!(check_headers(Some("Application/JSON; charset=utf-8"), Some("10")).is_ok());
        assert_eq!(check_headers(Some("text/plain"), None).unwrap_err().status, 415);
        assert_eq!(check_headers(None, None).unwrap_err().status, 415);
        let over = (collection::MAX_BODY_BYTES + 1).to_string();
        assert_eq!(check_headers(Some("application/json"), Some(&over)).unwrap_err().status, 413);
    }

    #[test]
    fn body_errors_become_specific_statuses() {
        let states = ClientStates::parse("s").unwrap();
        assert_eq!(accept_body(b"{", &states, 0, &RequestId::from_bytes([1; 16])).unwrap_err().status, 400);
        let big = vec![b' '; collection::MAX_BODY_BYTES + 1];
        assert_eq!(accept_body(&big, &states, 0, &RequestId::from_bytes([1; 16])).unwrap_err().status, 413);
        let empty = accept_body(br#"{"value":[]}"#, &states, 0, &RequestId::from_bytes([1; 16])).unwrap_err();
        assert_eq!(empty, Reply::text(400, "\"value\" is empty: there is nothing to accept"));
    }
}
