//! The accepted `clientState` values (docs/graph-protocol.md section 4).
//!
//! `clientState` is the shared secret that proves a notification comes from a
//! subscription we created. Several values are accepted at once so they can be
//! rotated. Comparison is constant time in the value AND its length: both sides
//! are hashed first, and every accepted value is always compared.

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// Graph's own maximum length of a clientState.
pub const MAX_CLIENT_STATE_LEN: usize = 128;

/// The set of clientState values the edge accepts.
#[derive(Clone)]
pub struct ClientStates {
    /// SHA-256 of each accepted value: equal-length inputs to the comparison,
    /// and no plaintext secret kept around to end up in a log by mistake.
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ClientStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientStates({} accepted values)", self.digests.len())
    }
}

impl ClientStates {
    /// Parses the comma-separated `CLIENT_STATES` setting. Blank entries are
    /// ignored; an entry longer than Graph allows is a configuration error.
    pub fn parse(setting: &str) -> Result<Self, String> {
        let mut digests = Vec::new();
        for value in setting.split(',').map(str::trim).filter(|v| !v.is_empty()) {
            if value.len() > MAX_CLIENT_STATE_LEN {
                return Err(format!("CLIENT_STATES has a value longer than {MAX_CLIENT_STATE_LEN} characters"));
            }
            digests.push(digest(value));
        }
        if digests.is_empty() {
            return Err("CLIENT_STATES is empty: no notification could be accepted".into());
        }
        Ok(Self { digests })
    }

    /// Whether `candidate` equals one of the accepted values.
    pub fn accepts(&self, candidate: &str) -> bool {
        let candidate = digest(candidate);
        let mut matched = Choice::from(0);
        for accepted in &self.digests {
            matched |= accepted.ct_eq(&candidate);
        }
        matched.into()
    }
}

fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_configured_value_during_rotation() {
        let states = ClientStates::parse(" old-secret , new-secret,,").unwrap();
        assert!(states.accepts("old-secret"));
        assert!(states.accepts("new-secret"));
        assert!(!states.accepts("other"));
        assert!(!states.accepts(""));
        assert!(!states.accepts("old-secret "));
        assert!(!states.accepts("OLD-SECRET"));
    }

    #[test]
    fn rejects_empty_and_overlong_settings() {
        assert!(ClientStates::parse(" , ").is_err());
        assert!(ClientStates::parse(&"x".repeat(129)).is_err());
        assert!(ClientStates::parse(&"x".repeat(128)).is_ok());
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let states = ClientStates::parse("hunter2").unwrap();
        assert_eq!(format!("{states:?}"), "ClientStates(1 accepted values)");
    }
}
