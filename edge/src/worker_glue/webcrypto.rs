//! RS256 through the Workers runtime's WebCrypto (`crypto.subtle`): the
//! JWK imported once per key (`importKey`, RSASSA-PKCS1-v1_5 / SHA-256),
//! each signature checked by `verify`, natively in the runtime. No RSA or
//! big-number code is compiled into the worker.
//!
//! A key the runtime will not import is a refusal with its reason; nothing
//! here panics.

use std::cell::RefCell;
use std::collections::HashMap;

use js_sys::{Array, Object, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{CryptoKey, SubtleCrypto};

use super::describe;
use crate::rs256::{Rs256, RsaJwk};

const ALGORITHM: &str = "RSASSA-PKCS1-v1_5";
/// Imported keys kept at most: a JWKS holds a handful, and rotations add a
/// few over an isolate's life; past this the cache starts over.
const MAX_KEYS: usize = 64;

thread_local! {
    // One per isolate (the Worker is single-threaded), for its whole life.
    static WEBCRYPTO: &'static WebCrypto = Box::leak(Box::default());
}

/// The isolate's WebCrypto verifier and its imported keys.
pub(crate) fn verifier() -> &'static WebCrypto {
    WEBCRYPTO.with(|verifier| *verifier)
}

/// Imported keys, by kid and modulus.
#[derive(Default)]
pub(crate) struct WebCrypto {
    keys: RefCell<HashMap<(String, String), CryptoKey>>,
}

impl Rs256 for WebCrypto {
    async fn verify(&self, key: &RsaJwk, signed: &[u8], signature: &[u8]) -> Result<bool, String> {
        let subtle = subtle()?;
        let imported = match self.imported(key) {
            Some(imported) => imported,
            None => {
                let imported = import(&subtle, key).await.map_err(|e| format!("importKey refused it: {e}"))?;
                let mut keys = self.keys.borrow_mut();
                if keys.len() >= MAX_KEYS {
                    keys.clear();
                }
                keys.insert((key.kid.clone(), key.n.clone()), imported.clone());
                imported
            }
        };
        let verdict = JsFuture::from(start(&subtle, &imported, signed, signature)?).await.map_err(describe)?;
        Ok(verdict.as_bool() == Some(true))
    }
}

impl WebCrypto {
    /// `verify`'s check started without awaiting anything, for the quick
    /// route: a promise of whether `signature` is `key`'s signature of
    /// `signed`; `None` when the key is not imported yet (importing is the
    /// full route's).
    pub(crate) fn start_verify(&self, key: &RsaJwk, signed: &[u8], signature: &[u8]) -> Option<Promise> {
        let imported = self.imported(key)?;
        start(&subtle().ok()?, &imported, signed, signature).ok()
    }

    fn imported(&self, key: &RsaJwk) -> Option<CryptoKey> {
        self.keys.borrow().get(&(key.kid.clone(), key.n.clone())).cloned()
    }
}

fn start(subtle: &SubtleCrypto, key: &CryptoKey, signed: &[u8], signature: &[u8]) -> Result<Promise, String> {
    subtle.verify_with_str_and_u8_array_and_u8_array(ALGORITHM, key, signature, signed).map_err(describe)
}

fn subtle() -> Result<SubtleCrypto, String> {
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto")).map_err(describe)?;
    if !crypto.is_object() {
        return Err("this runtime has no WebCrypto".into());
    }
    Ok(crypto.unchecked_into::<web_sys::Crypto>().subtle())
}

async fn import(subtle: &SubtleCrypto, key: &RsaJwk) -> Result<CryptoKey, String> {
    let jwk = object(&[("kty", "RSA"), ("n", &key.n), ("e", &key.e), ("alg", "RS256")])?;
    let algorithm = object(&[("name", ALGORITHM), ("hash", "SHA-256")])?;
    let usages = Array::of1(&JsValue::from_str("verify"));
    let promise = subtle.import_key_with_object("jwk", &jwk, &algorithm, false, &usages).map_err(describe)?;
    let imported = JsFuture::from(promise).await.map_err(describe)?;
    Ok(imported.unchecked_into())
}

fn object(fields: &[(&str, &str)]) -> Result<Object, String> {
    let object = Object::new();
    for (name, value) in fields {
        Reflect::set(&object, &JsValue::from_str(name), &JsValue::from_str(value)).map_err(describe)?;
    }
    Ok(object)
}
