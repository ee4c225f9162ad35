//! Decrypting rich notifications' `encryptedContent` (docs/graph-protocol.md
//! section 5), with RustCrypto:
//!
//! 1. pick the private key by `encryptionCertificateId` (old and new at once
//!    during a rotation);
//! 2. `K = RSA-OAEP-decrypt(dataKey)`, SHA-1 and MGF1-SHA1;
//! 3. check `HMAC-SHA256(K, data) == dataSignature` over the CIPHERTEXT, in
//!    constant time, BEFORE decrypting anything;
//! 4. `AES-256-CBC-decrypt(data, key = K, iv = K[0..16])`, PKCS7, UTF-8 JSON.

use std::collections::HashMap;
use std::path::Path;

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use graph_relay_proto::v1::{notification::Kind, EncryptedContent, Notification};
use hmac::{Hmac, Mac};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::{Oaep, RsaPrivateKey};
use thiserror::Error;

use crate::metrics::DecryptFailure;

type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecryptError {
    #[error("no private key for encryptionCertificateId {0:?}")]
    UnknownCertificate(String),
    #[error("{0} is not valid base64")]
    Base64(&'static str),
    #[error("dataKey does not decrypt with the certificate's key")]
    DataKey,
    #[error("dataKey is {0} bytes, not 32 (AES-256)")]
    KeyLength(usize),
    #[error("dataSignature does not match the data: tampered or wrong key")]
    Signature,
    #[error("data does not decrypt (padding)")]
    Padding,
    #[error("decrypted data is not UTF-8 JSON")]
    NotJson,
}

impl DecryptError {
    /// The metric label for this failure: a fixed set, never the id.
    pub fn cause(&self) -> DecryptFailure {
        match self {
            DecryptError::UnknownCertificate(_) => DecryptFailure::unknown_certificate,
            DecryptError::Base64(_) => DecryptFailure::base64,
            DecryptError::DataKey => DecryptFailure::data_key,
            DecryptError::KeyLength(_) => DecryptFailure::key_length,
            DecryptError::Signature => DecryptFailure::signature,
            DecryptError::Padding => DecryptFailure::padding,
            DecryptError::NotJson => DecryptFailure::not_json,
        }
    }
}

/// Private keys by `encryptionCertificateId`.
#[derive(Default)]
pub struct Keyring {
    keys: HashMap<String, RsaPrivateKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.keys.keys()).finish()
    }
}

impl Keyring {
    /// Adds the PEM (PKCS#8 or PKCS#1) private key at `path` as `id`.
    pub fn add_pem_file(&mut self, id: &str, path: &Path) -> Result<(), String> {
        let pem = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let key = RsaPrivateKey::from_pkcs8_pem(&pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(&pem))
            .map_err(|_| format!("{}: not an RSA private key in PEM", path.display()))?;
        self.keys.insert(id.to_owned(), key);
        Ok(())
    }

    pub fn add(&mut self, id: &str, key: RsaPrivateKey) {
        self.keys.insert(id.to_owned(), key);
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The resource data JSON inside `content`.
    pub fn decrypt(&self, content: &EncryptedContent) -> Result<String, DecryptError> {
        let id = &content.encryption_certificate_id;
        let key = self.keys.get(id).ok_or_else(|| DecryptError::UnknownCertificate(id.clone()))?;
        let data_key = decode("dataKey", &content.data_key)?;
        let data = decode("data", &content.data)?;
        let signature = decode("dataSignature", &content.data_signature)?;
        let k = key.decrypt(Oaep::new::<sha1::Sha1>(), &data_key).map_err(|_| DecryptError::DataKey)?;
        if k.len() != 32 {
            return Err(DecryptError::KeyLength(k.len()));
        }
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&k).map_err(|_| DecryptError::KeyLength(k.len()))?;
        mac.update(&data);
        mac.verify_slice(&signature).map_err(|_| DecryptError::Signature)?;
        let plaintext = Aes256CbcDec::new_from_slices(&k, &k[..16])
            .map_err(|_| DecryptError::KeyLength(k.len()))?
            .decrypt_padded_vec_mut::<Pkcs7>(&data)
            .map_err(|_| DecryptError::Padding)?;
        let text = String::from_utf8(plaintext).map_err(|_| DecryptError::NotJson)?;
        serde_json::from_str::<serde_json::Value>(&text).map_err(|_| DecryptError::NotJson)?;
        Ok(text)
    }

    /// Decrypts every rich item in place; returns how many failed.
    pub fn decrypt_all(&self, notifications: &mut [Notification]) -> usize {
        let mut failures = 0;
        for notification in notifications {
            let Some(Kind::Change(change)) = notification.kind.as_mut() else { continue };
            let Some(content) = change.encrypted_content.as_ref() else { continue };
            match self.decrypt(content) {
                Ok(json) => change.decrypted_resource_data_json = json,
                Err(e) => {
                    failures += 1;
                    crate::metrics::get().decryption_failed(e.cause());
                    change.decryption_error = e.to_string();
                }
            }
        }
        failures
    }
}

fn decode(field: &'static str, value: &str) -> Result<Vec<u8>, DecryptError> {
    STANDARD.decode(value.trim()).map_err(|_| DecryptError::Base64(field))
}
