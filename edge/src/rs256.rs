//! RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signature checks, behind one small
//! trait: in the Worker, the platform's WebCrypto does it natively
//! (`worker_glue::webcrypto`), so no big-number code is compiled to wasm;
//! natively (unit and end-to-end tests, benchmarks), RustCrypto's `rsa`.

/// An RSA public key of a JWKS, as the JWKS gives it (base64url).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsaJwk {
    pub kid: String,
    pub n: String,
    pub e: String,
}

/// Checks RS256 signatures with a JWKS's keys.
// The Worker is single-threaded: its futures are not Send, and need not be.
#[allow(async_fn_in_trait)]
pub trait Rs256 {
    /// Whether `signature` is `key`'s RS256 signature of `signed`; `Err`
    /// when the key cannot be used at all (a clear refusal, not a crash).
    async fn verify(&self, key: &RsaJwk, signed: &[u8], signature: &[u8]) -> Result<bool, String>;
}

/// RustCrypto's RSA, with each key parsed once.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Default)]
pub struct Native {
    keys: std::cell::RefCell<std::collections::HashMap<(String, String), rsa::RsaPublicKey>>,
}

#[cfg(not(target_arch = "wasm32"))]
impl Rs256 for Native {
    async fn verify(&self, key: &RsaJwk, signed: &[u8], signature: &[u8]) -> Result<bool, String> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        use rsa::signature::Verifier;

        let id = (key.kid.clone(), key.n.clone());
        let cached = self.keys.borrow().get(&id).cloned();
        let public = match cached {
            Some(public) => public,
            None => {
                let number = |field: &str, value: &str| {
                    URL_SAFE_NO_PAD.decode(value).map_err(|_| format!("key {}: {field} is not base64url", key.kid))
                };
                let (n, e) = (number("n", &key.n)?, number("e", &key.e)?);
                let public = rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(&n), rsa::BigUint::from_bytes_be(&e))
                    .map_err(|e| format!("key {}: not a usable RSA key: {e}", key.kid))?;
                self.keys.borrow_mut().insert(id, public.clone());
                public
            }
        };
        let verifying = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(public);
        let Ok(signature) = rsa::pkcs1v15::Signature::try_from(signature) else { return Ok(false) };
        Ok(verifying.verify(signed, &signature).is_ok())
    }
}
