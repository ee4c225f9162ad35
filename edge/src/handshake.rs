//! Graph's validation handshake (docs/graph-protocol.md section 1).
//!
//! On subscription creation Graph POSTs `?validationToken=<url-encoded token>`
//! to the notification and lifecycle URLs and expects the DECODED token back as
//! `text/plain` within 10 s. The token is reflected to the caller, so it is
//! never rendered as anything but plain text, and its size is capped.

use thiserror::Error;

/// Longest decoded token we reflect. Graph's tokens are a sentence plus a
/// request id (~200 bytes); anything far longer is not Graph.
pub const MAX_TOKEN_BYTES: usize = 1024;

const PARAM: &str = "validationToken";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum HandshakeError {
    #[error("validationToken is longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    #[error("validationToken is empty")]
    Empty,
    #[error("validationToken is not valid UTF-8 once decoded")]
    NotUtf8,
}

/// Finds the validation token in a raw query string (without `?`).
///
/// Returns `None` when the request is not a handshake. Decoding follows
/// `application/x-www-form-urlencoded` (`+` is a space, `%2B` a plus), as the
/// query parsers of Microsoft's own webhook samples do.
pub fn validation_token(query: &str) -> Option<Result<String, HandshakeError>> {
    let raw = query.split('&').find_map(|pair| pair.strip_prefix(PARAM)?.strip_prefix('='))?;
    Some(decode(raw))
}

fn decode(raw: &str) -> Result<String, HandshakeError> {
    // A percent-encoded byte takes 3 characters: reject early what cannot fit.
    if raw.len() > MAX_TOKEN_BYTES * 3 {
        return Err(HandshakeError::TooLong);
    }
    let spaced = raw.replace('+', " ");
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(&spaced).collect();
    if bytes.len() > MAX_TOKEN_BYTES {
        return Err(HandshakeError::TooLong);
    }
    if bytes.is_empty() {
        return Err(HandshakeError::Empty);
    }
    String::from_utf8(bytes).map_err(|_| HandshakeError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(query: &str) -> Result<String, HandshakeError> {
        validation_token(query).expect("query holds a token")
    }

    #[test]
    fn plain_query_is_not_a_handshake() {
        assert_eq!(validation_token(""), None);
        assert_eq!(validation_token("tenant=contoso"), None);
        assert_eq!(validation_token("xvalidationToken=abc"), None);
        assert_eq!(validation_token("validationTokenX=abc"), None);
    }

    #[test]
    fn decodes_percent_escapes_plus_and_unicode() {
        assert_eq!(token("validationToken=abc%2Fdef"), Ok("abc/def".into()));
        assert_eq!(token("validationToken=a+b%20c"), Ok("a b c".into()));
        assert_eq!(token("validationToken=a%2Bb"), Ok("a+b".into()));
        assert_eq!(token("validationToken=caf%C3%A9%20%E2%9C%93"), Ok("café ✓".into()));
        assert_eq!(token("validationToken=%3Cscript%3E"), Ok("<script>".into()));
    }

    #[test]
    fn finds_the_token_among_other_parameters() {
        assert_eq!(token("tenant=x&validationToken=t%26u&y=z"), Ok("t&u".into()));
    }

    #[test]
    fn rejects_empty_overlong_and_non_utf8() {
        assert_eq!(token("validationToken="), Err(HandshakeError::Empty));
        assert_eq!(token("validationToken=%FF%FE"), Err(HandshakeError::NotUtf8));
        let at_limit = "a".repeat(MAX_TOKEN_BYTES);
        assert_eq!(token(&format!("validationToken={at_limit}")), Ok(at_limit));
        let over = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(token(&format!("validationToken={over}")), Err(HandshakeError::TooLong));
        let encoded_over = "%41".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(token(&format!("validationToken={encoded_over}")), Err(HandshakeError::TooLong));
    }
}
