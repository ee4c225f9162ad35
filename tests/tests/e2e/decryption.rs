//! encryptedContent decryption, natively: vectors made with Graph's documented
//! algorithm at run time, round trip, tampering, wrong key id, rotation.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use graph_relay_fanout::ingest::decrypt::{DecryptError, Keyring};
use graph_relay_proto::v1::EncryptedContent;
use graph_relay_tests::encryption::encrypt;
use graph_relay_tests::tokens::SigningKey;
use serde_json::Value;

const PLAINTEXT: &str = r#"{"id":"1616990032426","body":{"contentType":"html","content":"<p>héllo ✓</p>"}}"#;

fn content(value: &Value) -> EncryptedContent {
    let field = |name: &str| value[name].as_str().unwrap_or("").to_owned();
    EncryptedContent {
        data: field("data"),
        data_key: field("dataKey"),
        data_signature: field("dataSignature"),
        encryption_certificate_id: field("encryptionCertificateId"),
        encryption_certificate_thumbprint: field("encryptionCertificateThumbprint"),
    }
}

fn keyring() -> Keyring {
    let (old, new) = SigningKey::pair();
    let mut keyring = Keyring::default();
    keyring.add("cert-old", old.private.clone());
    keyring.add("cert-new", new.private.clone());
    keyring
}

#[test]
fn round_trip_with_either_key_during_rotation() {
    let (old, new) = SigningKey::pair();
    let keyring = keyring();
    assert_eq!(keyring.decrypt(&content(&encrypt(&old.private, "cert-old", PLAINTEXT))).unwrap(), PLAINTEXT);
    assert_eq!(keyring.decrypt(&content(&encrypt(&new.private, "cert-new", PLAINTEXT))).unwrap(), PLAINTEXT);
}

#[test]
fn tampering_is_caught_before_decryption() {
    let (old, _) = SigningKey::pair();
    let original = content(&encrypt(&old.private, "cert-old", PLAINTEXT));

    let mut signature = STANDARD.decode(&original.data_signature).unwrap();
    signature[0] ^= 1;
    let tampered_signature = EncryptedContent { data_signature: STANDARD.encode(signature), ..original.clone() };
    assert_eq!(keyring().decrypt(&tampered_signature), Err(DecryptError::Signature));

    let mut data = STANDARD.decode(&original.data).unwrap();
    let last = data.len() - 1;
    data[last] ^= 1;
    let tampered_data = EncryptedContent { data: STANDARD.encode(data), ..original.clone() };
    assert_eq!(keyring().decrypt(&tampered_data), Err(DecryptError::Signature), "the HMAC covers the ciphertext");
}

#[test]
fn unknown_or_wrong_keys_are_named() {
    let (old, new) = SigningKey::pair();
    let unknown = content(&encrypt(&old.private, "cert-retired", PLAINTEXT));
    assert_eq!(keyring().decrypt(&unknown), Err(DecryptError::UnknownCertificate("cert-retired".into())));
    // Right id, but encrypted for another key.
    let mismatched = content(&encrypt(&new.private, "cert-old", PLAINTEXT));
    assert_eq!(keyring().decrypt(&mismatched), Err(DecryptError::DataKey));
    let garbage = EncryptedContent { data_key: "***".into(), ..content(&encrypt(&old.private, "cert-old", PLAINTEXT)) };
    assert_eq!(keyring().decrypt(&garbage), Err(DecryptError::Base64("dataKey")));
}
