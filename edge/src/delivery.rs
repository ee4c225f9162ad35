//! The identity of each item the edge accepts: one delivery, not its content.
//!
//! Graph sends nothing that tells two deliveries apart: basic notifications
//! for users, groups or drives carry no etag, so a user updated twice arrives
//! as two byte-identical items. What the edge does know is which request it
//! acknowledged. Every request gets a random id, and every accepted item the
//! id `"<request id>/<index in value>"`. The id travels inside the
//! `PublishRequest` bytes (queue message, dead letter, replay, retried
//! Publish) and the fan-out stores an item once per id. So redelivery and
//! replay are recognised, and two acknowledged deliveries stay two events.
//! A request Graph retries because it got no 202 is a new request: that is
//! the at-least-once part of the guarantee (docs/graph-protocol.md section 8).

use std::fmt;

/// A request's identity: 128 random bits, as 32 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

/// Why no request id could be made (the platform's randomness failed).
#[derive(Debug, thiserror::Error)]
#[error("no randomness for a request id: {0}")]
pub struct NoRandomness(String);

impl RequestId {
    /// A fresh id from the platform's cryptographic randomness
    /// (`crypto.getRandomValues` in a Worker, the OS natively).
    pub fn random() -> Result<Self, NoRandomness> {
        let mut bytes = [0u8; 16];
        getrandom::getrandom(&mut bytes).map_err(|e| NoRandomness(e.to_string()))?;
        Ok(Self::from_bytes(bytes))
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        Self(bytes.iter().flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]).map(char::from).collect())
    }

    /// The delivery id of the item at `index` of this request's `value`.
    pub fn item(&self, index: usize) -> String {
        let mut id = String::with_capacity(self.0.len() + 5);
        id.push_str(&self.0);
        id.push('/');
        id.push_str(itoa::Buffer::new().format(index));
        id
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_ids_name_the_request_and_the_position() {
        let id = RequestId::from_bytes([0xab; 16]);
        assert_eq!(id.item(0), format!("{}/0", "ab".repeat(16)));
        assert_ne!(id.item(1), id.item(10));
    }

    #[test]
    fn random_ids_differ_and_are_32_hex_digits() {
        let (a, b) = (RequestId::random().unwrap(), RequestId::random().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.to_string().len(), 32);
        assert!(a.to_string().bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
