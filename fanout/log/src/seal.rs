//! Log groups sealed at rest, so decrypted resource data never lies in the
//! data directory in plaintext.
//!
//! Rich notifications are decrypted once, before they are stored (see
//! `decrypt`), which puts message bodies and chat text in the log. With log
//! keys (`--log-key-file`), every group the writer stores is sealed with
//! XChaCha20-Poly1305 (RustCrypto) and opened again when read: a copied
//! `events.redb`, a backup or a disk image shows nothing without the key,
//! and a changed byte fails to open instead of reading as other data.
//!
//! The key file holds one key per line. The first seals; every one opens,
//! so a key is rotated by putting the new one first and keeping the old one
//! until retention has removed the groups it sealed.
//!
//! # Layout
//! A sealed value is `[SEALED][key id: 4][nonce: 24][ciphertext + 16-byte tag]`,
//! with the group's first sequence as associated data, so a group moved
//! under another key does not open either. The key id (the start of a
//! SHA-256 of the key) picks the key without trying each. The nonce is
//! random: at 192 bits that is safe for any number of groups, and a log
//! recreated with the same key (sequences from 1 again) reuses no nonce. A
//! plaintext group starts with its first record's length as a big-endian u32
//! whose top byte is 0 (records are far below 16 MiB), so the first byte
//! tells the two apart: groups stored before keys were set stay readable.

use std::borrow::Cow;
use std::path::Path;

use chacha20poly1305::aead::{Aead, AeadCore, AeadInPlace, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

/// First byte of a sealed group (never the first byte of a plaintext one).
const SEALED: u8 = 0xE5;
const KEY_ID: usize = 4;
const NONCE: usize = 24;
const HEADER: usize = 1 + KEY_ID + NONCE;
/// Poly1305's tag, after the ciphertext.
const TAG: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("log key {line}: a key is 64 hex characters (32 bytes, e.g. `openssl rand -hex 32`), found {found}")]
    KeyLength { line: usize, found: usize },
    #[error("log key {line} is not hex")]
    KeyNotHex { line: usize },
    #[error("the log key file holds no key")]
    NoKeys,
    #[error("reading the log key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("log group {first} could not be sealed")]
    Seal { first: u64 },
    #[error("log group {first} is sealed and no log key is set (--log-key-file)")]
    NoKey { first: u64 },
    #[error("log group {first} is sealed with a key that is not in the log key file")]
    UnknownKey { first: u64 },
    #[error("log group {first} does not open: it was altered or cut short")]
    Altered { first: u64 },
    #[error(
        "log group {first} is not sealed, but this log seals every group from {sealed_from} on: it was swapped in"
    )]
    NotSealed { first: u64, sealed_from: u64 },
    #[error("this log is sealed (every group from {sealed_from} on): start with its --log-key-file")]
    SealedLogWithoutKey { sealed_from: u64 },
}

/// The keys groups are sealed and opened with. `Debug` shows no key material.
#[derive(Clone)]
pub struct LogKeys {
    /// Each key's id and cipher, keyed once; the first seals.
    keys: Vec<([u8; KEY_ID], XChaCha20Poly1305)>,
}

impl std::fmt::Debug for LogKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogKeys({} keys)", self.keys.len())
    }
}

impl LogKeys {
    /// Keys written as 64 hex characters each, one per line (blank lines and
    /// lines starting with `#` are skipped).
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let mut keys = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line_number = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            keys.push(key_from_hex(line, line_number)?);
        }
        if keys.is_empty() {
            return Err(SealError::NoKeys);
        }
        Ok(Self { keys })
    }

    /// Reads the keys from a file; warns when others than its owner may
    /// read it.
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
        Self::parse(&text)
    }

    /// The sealed form of the group whose first sequence is `first`, with
    /// the first key.
    pub(crate) fn seal(&self, first: u64, group: &[u8]) -> Result<Vec<u8>, SealError> {
        let Some((id, cipher)) = self.keys.first() else { return Err(SealError::NoKeys) };
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut sealed = Vec::with_capacity(HEADER + group.len() + TAG);
        sealed.push(SEALED);
        sealed.extend_from_slice(id);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(group);
        // In place: the group is copied once, into the value redb stores.
        // Fails only for messages over ~256 GiB; groups are about 256 KiB.
        let tag = cipher
            .encrypt_in_place_detached(&nonce, &first.to_be_bytes(), &mut sealed[HEADER..])
            .map_err(|_| SealError::Seal { first })?;
        sealed.extend_from_slice(&tag);
        Ok(sealed)
    }
}

fn key_from_hex(text: &str, line: usize) -> Result<([u8; KEY_ID], XChaCha20Poly1305), SealError> {
    if text.len() != 64 {
        return Err(SealError::KeyLength { line, found: text.len() });
    }
    let mut key = [0u8; 32];
    base16ct::mixed::decode(text, &mut key).map_err(|_| SealError::KeyNotHex { line })?;
    let digest = Sha256::new().chain_update(b"graph-relay log key id").chain_update(key).finalize();
    let mut id = [0u8; KEY_ID];
    id.copy_from_slice(&digest[..KEY_ID]);
    Ok((id, XChaCha20Poly1305::new(&key.into())))
}

/// The stored form of a group: sealed with the first key if there are
/// keys, as it is if not (the reverse of [`open`]).
pub(crate) fn seal_if<'a>(keys: Option<&LogKeys>, first: u64, group: &'a [u8]) -> Result<Cow<'a, [u8]>, SealError> {
    match keys {
        Some(keys) => keys.seal(first, group).map(Cow::Owned),
        None => Ok(Cow::Borrowed(group)),
    }
}

/// How a log's groups are opened: with which keys, and from which first
/// sequence on every group must be sealed (kept in the log's metadata from
/// the first time it was opened with a key; groups stored before that may
/// be plaintext, a later one may not).
#[derive(Clone, Copy, Default)]
pub(crate) struct Opening<'a> {
    pub keys: Option<&'a LogKeys>,
    pub sealed_from: Option<u64>,
}

/// The plaintext of a stored group: as it is if it was stored unsealed (and
/// may be), opened with its key if it was sealed.
pub(crate) fn open<'a>(opening: Opening<'_>, first: u64, stored: &'a [u8]) -> Result<Cow<'a, [u8]>, SealError> {
    let keys = opening.keys;
    if stored.first() != Some(&SEALED) {
        return match opening.sealed_from {
            Some(sealed_from) if first >= sealed_from => Err(SealError::NotSealed { first, sealed_from }),
            _ => Ok(Cow::Borrowed(stored)),
        };
    }
    let keys = keys.ok_or(SealError::NoKey { first })?;
    let header = stored.get(..HEADER).ok_or(SealError::Altered { first })?;
    let (id, nonce) = header[1..].split_at(KEY_ID);
    let (_, cipher) = keys.keys.iter().find(|(known, _)| known == id).ok_or(SealError::UnknownKey { first })?;
    let aad = first.to_be_bytes();
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: &stored[HEADER..], aad: &aad })
        .map(Cow::Owned)
        .map_err(|_| SealError::Altered { first })
}

/// The associated data of a shared log's message, whose sequence is not
/// known before the shared log numbers it: never a group's first sequence,
/// so a group cannot be passed off as a message or the other way round.
const MESSAGE: u64 = u64::MAX;

/// A shared log's message (`--log nats`) as it rests there: sealed with the
/// first key if there are keys, as it is if not.
pub fn seal_message<'a>(keys: Option<&LogKeys>, message: &'a [u8]) -> Result<Cow<'a, [u8]>, SealError> {
    seal_if(keys, MESSAGE, message)
}

/// The plaintext of a shared log's message; with keys, a message that is
/// not sealed is refused (it was not written by a replica with the keys).
pub fn open_message<'a>(keys: Option<&LogKeys>, stored: &'a [u8]) -> Result<Cow<'a, [u8]>, SealError> {
    open(Opening { keys, sealed_from: keys.map(|_| 0) }, MESSAGE, stored)
}

#[cfg(test)]
#[path = "seal_tests.rs"]
mod tests;
