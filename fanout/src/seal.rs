//! Log groups sealed at rest, so decrypted resource data never lies in the
//! data directory in plaintext.
//!
//! Rich notifications are decrypted once, before they are stored (see
//! `decrypt`), which puts message bodies and chat text in the log. With a
//! log key (`--log-key-file`), every group the writer stores is sealed with
//! XChaCha20-Poly1305 (RustCrypto) and opened again when read: a copied
//! `events.redb`, a backup or a disk image shows nothing without the key,
//! and a changed byte fails to open instead of reading as other data.
//!
//! # Layout
//! A sealed value is `[SEALED][nonce: 24 bytes][ciphertext + 16-byte tag]`,
//! with the group's first sequence as associated data, so a group moved
//! under another key does not open either. The nonce is random: at 192 bits
//! that is safe for any number of groups, and a log recreated with the same
//! key (sequences from 1 again) reuses no nonce. A plaintext group starts
//! with its first record's length as a big-endian u32 whose top byte is 0
//! (records are far below 16 MiB), so the first byte tells the two apart:
//! groups stored before a key was set stay readable, sealed ones need it.

use std::borrow::Cow;
use std::path::Path;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// First byte of a sealed group (never the first byte of a plaintext one).
const SEALED: u8 = 0xE5;
const NONCE: usize = 24;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the log key must be 64 hex characters (32 bytes, e.g. `openssl rand -hex 32`), found {0} characters")]
    KeyLength(usize),
    #[error("the log key is not hex")]
    KeyNotHex,
    #[error("reading the log key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("log group {first} is sealed and no log key is set (--log-key-file)")]
    NoKey { first: u64 },
    #[error("log group {first} could not be sealed")]
    Seal { first: u64 },
    #[error("log group {first} does not open with this log key (another key, or the group was altered)")]
    WrongKey { first: u64 },
}

/// The key groups are sealed with. Its `Debug` shows no key material.
pub struct LogKey {
    /// The cipher, keyed once: sealing a group costs no key schedule.
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogKey(..)")
    }
}

impl LogKey {
    /// A key written as 64 hex characters (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(SealError::KeyLength(text.len()));
        }
        let mut key = [0u8; 32];
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SealError::KeyNotHex);
        }
        for (byte, pair) in key.iter_mut().zip(text.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| SealError::KeyNotHex)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| SealError::KeyNotHex)?;
        }
        Ok(Self { cipher: XChaCha20Poly1305::new(&key.into()) })
    }

    /// Reads the key from a file holding its hex form; warns when others
    /// than its owner may read the file.
    pub fn read(path: &Path) -> Result<Self, SealError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SealError::KeyFile { path: path.display().to_string(), reason: e.to_string() })?;
        #[cfg(unix)]
        if let Ok(metadata) = std::fs::metadata(path) {
            use std::os::unix::fs::PermissionsExt;
            if metadata.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "the log key file is readable by others than its owner (chmod 600)");
            }
        }
        Self::from_hex(&text)
    }

    /// The sealed form of the group whose first sequence is `first`.
    pub(crate) fn seal(&self, first: u64, group: &[u8]) -> Result<Vec<u8>, SealError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = first.to_be_bytes();
        let mut sealed = Vec::with_capacity(1 + NONCE + group.len() + 16);
        sealed.push(SEALED);
        sealed.extend_from_slice(&nonce);
        // Fails only for messages over ~256 GiB; groups are about 256 KiB.
        let ciphertext =
            self.cipher.encrypt(&nonce, Payload { msg: group, aad: &aad }).map_err(|_| SealError::Seal { first })?;
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }
}

/// The plaintext of a stored group: as it is if it was stored unsealed,
/// opened with `key` if it was sealed.
pub(crate) fn open<'a>(key: Option<&LogKey>, first: u64, stored: &'a [u8]) -> Result<Cow<'a, [u8]>, SealError> {
    if stored.first() != Some(&SEALED) {
        return Ok(Cow::Borrowed(stored));
    }
    let key = key.ok_or(SealError::NoKey { first })?;
    let nonce = stored.get(1..1 + NONCE).ok_or(SealError::WrongKey { first })?;
    let ciphertext = &stored[1 + NONCE..];
    let aad = first.to_be_bytes();
    key.cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad })
        .map(Cow::Owned)
        .map_err(|_| SealError::WrongKey { first })
}

impl From<SealError> for redb::Error {
    /// The store's errors are redb's; a group that does not open is, to the
    /// store, a value it cannot use.
    fn from(error: SealError) -> Self {
        redb::Error::Corrupted(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn key() -> LogKey {
        LogKey::from_hex(HEX).unwrap()
    }

    #[test]
    fn a_sealed_group_opens_to_its_plaintext_and_hides_it() {
        let group = b"\0\0\0\x05hello message body";
        let sealed = key().seal(7, group).unwrap();
        assert!(!sealed.windows(5).any(|w| w == b"hello"), "no plaintext in the sealed form");
        assert_eq!(open(Some(&key()), 7, &sealed).unwrap().as_ref(), group);
        assert_ne!(key().seal(7, group).unwrap(), sealed, "a fresh nonce per seal");
    }

    #[test]
    fn a_sealed_group_needs_the_key_its_sequence_and_every_byte() {
        let sealed = key().seal(7, b"\0\0\0\x01x").unwrap();
        assert_eq!(open(None, 7, &sealed), Err(SealError::NoKey { first: 7 }));
        let other = LogKey::from_hex(&HEX.replace("1f", "ff")).unwrap();
        assert_eq!(open(Some(&other), 7, &sealed), Err(SealError::WrongKey { first: 7 }));
        assert_eq!(open(Some(&key()), 8, &sealed), Err(SealError::WrongKey { first: 8 }), "moved under another key");
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(open(Some(&key()), 7, &altered), Err(SealError::WrongKey { first: 7 }));
        assert_eq!(open(Some(&key()), 7, &sealed[..10]), Err(SealError::WrongKey { first: 7 }), "cut short");
    }

    #[test]
    fn plaintext_groups_read_as_they_are_with_or_without_a_key() {
        let group = b"\0\0\0\x03abc";
        assert!(matches!(open(Some(&key()), 1, group), Ok(Cow::Borrowed(g)) if g == group));
        assert!(matches!(open(None, 1, group), Ok(Cow::Borrowed(g)) if g == group));
    }

    #[test]
    fn keys_are_64_hex_characters() {
        assert_eq!(LogKey::from_hex("abcd").unwrap_err(), SealError::KeyLength(4));
        assert_eq!(LogKey::from_hex(&HEX.replace("0a", "zz")).unwrap_err(), SealError::KeyNotHex);
        assert_eq!(LogKey::from_hex(&HEX.replace("0a", "+a")).unwrap_err(), SealError::KeyNotHex);
        assert!(LogKey::from_hex(&format!("  {}\n", HEX.to_uppercase())).is_ok());
        assert_eq!(format!("{:?}", key()), "LogKey(..)");
    }
}
