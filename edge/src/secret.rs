//! Constant-time checks of secrets presented by callers.
//!
//! Both sides are hashed first, so the comparison takes the same time
//! whatever the content or the length of what was presented.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Whether `presented` equals `expected`, in constant time.
pub fn matches(presented: &str, expected: &str) -> bool {
    let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let expected: [u8; 32] = Sha256::digest(expected.as_bytes()).into();
    presented.ct_eq(&expected).into()
}

/// Whether an `Authorization` header carries `Bearer <expected>`.
pub fn bearer_matches(authorization: Option<&str>, expected: &str) -> bool {
    let token = authorization
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    // Compare even when the header is absent, so timing says nothing.
    matches(token.unwrap_or(""), expected) && token.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_matches() {
        assert!(bearer_matches(Some("Bearer s3cret-admin"), "s3cret-admin"));
        assert!(bearer_matches(Some("bearer s3cret-admin"), "s3cret-admin"));
        assert!(!bearer_matches(Some("Bearer s3cret-admi"), "s3cret-admin"));
        assert!(!bearer_matches(Some("Basic s3cret-admin"), "s3cret-admin"));
        assert!(!bearer_matches(Some("s3cret-admin"), "s3cret-admin"));
        assert!(!bearer_matches(None, "s3cret-admin"));
        assert!(!bearer_matches(None, ""), "no header never matches, even an empty secret");
    }
}
