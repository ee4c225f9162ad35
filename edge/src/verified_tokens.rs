//! validationTokens whose signature was already verified, so a batch that
//! carries the same token as an earlier one skips the RSA check.
//!
//! Graph obtains a validationToken per app and tenant and sends the same
//! token with every batch until it nears expiry (about an hour). The RS256
//! check is by far the largest CPU cost of a rich request in the Worker
//! (~0.9 ms as wasm, docs/performance-history.md), so an isolate remembers the tokens it
//! verified. A hit must be the byte-identical token, verified under the same
//! key set (the cache lives in `Keys`, so a refetched JWKS starts empty) and
//! the same policy (a different policy empties it). Only the time checks
//! depend on when the token is used; they run again on every hit.
//!
//! # Layout
//! - `by_token`: token → the tenant it vouches for and its validity window.
//! - `policy`: the policy the entries were verified under.

use std::collections::HashMap;
use std::sync::Mutex;

/// Entries kept; beyond this the expired go, then everything (re-verifying
/// is only slower, never wrong). Tokens are one per app and tenant.
const MAX_ENTRIES: usize = 512;

/// Clock skew tolerated on `exp` and `nbf`, here and in the full check.
pub const LEEWAY_SECONDS: u64 = 120;

/// What a verified token established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Vouched {
    /// The `tid` the token vouches for.
    pub(crate) tenant: String,
    /// `nbf` and `exp`, checked again (with the leeway) on every use.
    pub(crate) not_before: u64,
    pub(crate) expires: u64,
}

impl Vouched {
    /// Why the token may not be used at `now`, in the JWT ecosystem's words
    /// (jsonwebtoken's), the same for a token verified now and one
    /// remembered.
    pub(crate) fn untimely(&self, now: u64) -> Option<&'static str> {
        if now > self.expires.saturating_add(LEEWAY_SECONDS) {
            Some("ExpiredSignature")
        } else if now.saturating_add(LEEWAY_SECONDS) < self.not_before {
            Some("ImmatureSignature")
        } else {
            None
        }
    }
}

#[derive(Default)]
struct Entries {
    by_token: HashMap<String, Vouched>,
    /// A fingerprint of the policy the entries were verified under.
    policy: String,
}

/// The verified tokens of one key set. Interior mutability: `Keys` is shared
/// (`Rc` in the isolate); a poisoned lock only disables the cache.
#[derive(Default)]
pub(crate) struct VerifiedTokens {
    entries: Mutex<Entries>,
}

impl VerifiedTokens {
    /// What `token` established, if it was verified under `policy`.
    pub(crate) fn get(&self, token: &str, policy: &str) -> Option<Vouched> {
        let entries = self.entries.lock().ok()?;
        if entries.policy != policy {
            return None;
        }
        entries.by_token.get(token).cloned()
    }

    /// Remembers a token whose signature and claims were just verified.
    pub(crate) fn insert(&self, token: &str, policy: &str, vouched: Vouched, now: u64) {
        let Ok(mut entries) = self.entries.lock() else { return };
        if entries.policy != policy {
            entries.by_token.clear();
            entries.policy = policy.to_owned();
        }
        if entries.by_token.len() >= MAX_ENTRIES {
            entries.by_token.retain(|_, v| v.untimely(now).is_none());
        }
        if entries.by_token.len() >= MAX_ENTRIES {
            entries.by_token.clear();
        }
        entries.by_token.insert(token.to_owned(), vouched);
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.lock().map(|e| e.by_token.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vouched(not_before: u64, expires: u64) -> Vouched {
        Vouched { tenant: "t".into(), not_before, expires }
    }

    #[test]
    fn time_is_checked_with_the_leeway() {
        let v = vouched(1_000, 2_000);
        assert_eq!(v.untimely(1_500), None);
        assert_eq!(v.untimely(2_000 + LEEWAY_SECONDS), None);
        assert_eq!(v.untimely(2_001 + LEEWAY_SECONDS), Some("ExpiredSignature"));
        assert_eq!(v.untimely(1_000 - LEEWAY_SECONDS), None);
        assert_eq!(v.untimely(999 - LEEWAY_SECONDS), Some("ImmatureSignature"));
    }

    #[test]
    fn entries_belong_to_one_policy() {
        let cache = VerifiedTokens::default();
        cache.insert("a.b.c", "app-1|", vouched(0, 10), 5);
        assert_eq!(cache.get("a.b.c", "app-1|"), Some(vouched(0, 10)));
        assert_eq!(cache.get("a.b.c", "app-2|"), None, "another policy never sees them");
        assert_eq!(cache.get("a.b.x", "app-1|"), None, "only the identical token");
        cache.insert("d.e.f", "app-2|", vouched(0, 10), 5);
        assert_eq!(cache.get("a.b.c", "app-1|"), None, "a new policy empties the cache");
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_full_cache_drops_the_expired_first_then_everything() {
        let cache = VerifiedTokens::default();
        cache.insert("long.lived.x", "p", vouched(0, 10_000), 5);
        for i in 1..MAX_ENTRIES {
            cache.insert(&format!("short.{i}.x"), "p", vouched(0, 10), 5);
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        cache.insert("new.token.x", "p", vouched(0, 10_000), 500);
        assert_eq!(cache.len(), 2, "the expired went, the valid stayed");
        assert!(cache.get("long.lived.x", "p").is_some());
        for i in 2..MAX_ENTRIES {
            cache.insert(&format!("valid.{i}.x"), "p", vouched(0, 10_000), 500);
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        cache.insert("one.more.x", "p", vouched(0, 10_000), 500);
        assert_eq!(cache.len(), 1, "nothing expired: everything went");
    }
}
