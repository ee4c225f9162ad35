//! What Graph does for rich notifications: encrypt the resource data with a
//! fresh AES key, sign the ciphertext, wrap the key with the subscription's
//! certificate (docs/graph-protocol.md section 5), here with keys made at run time.

use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use rsa::{Oaep, RsaPrivateKey};
use serde_json::{json, Value};

/// The `encryptedContent` Graph would send for `plaintext`.
pub fn encrypt(certificate_key: &RsaPrivateKey, certificate_id: &str, plaintext: &str) -> Value {
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    let data = cbc::Encryptor::<aes::Aes256>::new_from_slices(&key, &key[..16])
        .expect("32-byte key, 16-byte iv")
        .encrypt_padded_vec_mut::<Pkcs7>(plaintext.as_bytes());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(&data);
    let signature = mac.finalize().into_bytes();
    let data_key = certificate_key
        .to_public_key()
        .encrypt(&mut rand::thread_rng(), Oaep::new::<sha1::Sha1>(), &key)
        .expect("RSA-OAEP");
    json!({
        "data": STANDARD.encode(&data),
        "dataKey": STANDARD.encode(data_key),
        "dataSignature": STANDARD.encode(signature),
        "encryptionCertificateId": certificate_id,
        "encryptionCertificateThumbprint": "3C2B6C2E6DCAB5D3F8E93D0F8FAB87A23C5A2F2F",
    })
}

/// Writes `key` as a PKCS#8 PEM file the fan-out can load.
pub fn write_pem(key: &RsaPrivateKey, path: &std::path::Path) {
    use rsa::pkcs8::EncodePrivateKey;
    let pem = key.to_pkcs8_pem(Default::default()).expect("PEM");
    std::fs::write(path, pem.as_bytes()).expect("writing the key file");
}

/// An RSA key (PKCS#8 PEM) and a self-signed certificate for it (PEM), as files:
/// what an operator makes for rich notifications or certificate credentials.
pub fn certificate_files(dir: &std::path::Path, name: &str) -> (String, String) {
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("RSA key");
    let pem = key.to_pkcs8_pem(LineEnding::LF).expect("PEM").to_string();
    let pair = rcgen::KeyPair::from_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256).expect("rcgen key");
    let cert =
        rcgen::CertificateParams::new(vec![name.into()]).expect("params").self_signed(&pair).expect("certificate");
    let (key_path, cert_path) = (dir.join(format!("{name}.key")), dir.join(format!("{name}.pem")));
    std::fs::write(&key_path, pem).expect("key file");
    std::fs::write(&cert_path, cert.pem()).expect("certificate file");
    (key_path.display().to_string(), cert_path.display().to_string())
}
