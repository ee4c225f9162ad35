//! What the Microsoft identity platform does for rich notifications: signing
//! keys published as a JWKS, and validationTokens signed with them. Keys are
//! generated at run time; nothing secret is committed.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const APP_ID: &str = "11111111-2222-3333-4444-555555555555";
pub const TENANT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
pub const GRAPH_CALLER: &str = graph_relay_edge::validation_tokens::GRAPH_CHANGE_TRACKING_APP_ID;

/// An RSA signing key with its `kid`.
pub struct SigningKey {
    pub kid: String,
    pub private: RsaPrivateKey,
}

impl SigningKey {
    pub fn generate(kid: &str) -> SigningKey {
        let private = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("RSA key generation");
        SigningKey { kid: kid.into(), private }
    }

    /// Two keys generated once per test process (generation is slow).
    pub fn pair() -> &'static (SigningKey, SigningKey) {
        static KEYS: OnceLock<(SigningKey, SigningKey)> = OnceLock::new();
        KEYS.get_or_init(|| (SigningKey::generate("key-1"), SigningKey::generate("key-2")))
    }

    /// This key as a JWKS entry.
    pub fn jwk(&self) -> Value {
        let public = self.private.to_public_key();
        json!({
            "kty": "RSA", "use": "sig", "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        })
    }

    /// Signs `claims` with RS256, `kid` in the header.
    pub fn sign(&self, claims: &Value) -> String {
        let pem = self.private.to_pkcs1_pem(Default::default()).expect("PEM");
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("encoding key");
        let header = Header { kid: Some(self.kid.clone()), ..Header::new(Algorithm::RS256) };
        jsonwebtoken::encode(&header, claims, &key).expect("signing")
    }
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The claims of a valid v1 validationToken.
pub fn valid_claims() -> Value {
    json!({
        "aud": APP_ID,
        "iss": format!("https://sts.windows.net/{TENANT}/"),
        "tid": TENANT,
        "appid": GRAPH_CALLER,
        "iat": now() - 60,
        "nbf": now() - 60,
        "exp": now() + 3600,
    })
}

/// `header.payload.` with the given header: for `alg: none` and friends.
pub fn unsigned(header: &Value, claims: &Value) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.", part(header), part(claims))
}

/// HS256 over the token, keyed with the RSA public key's PEM: the classic
/// algorithm-confusion forgery.
pub fn hs256_with_public_key(key: &SigningKey, claims: &Value) -> String {
    use rsa::pkcs1::EncodeRsaPublicKey;
    let pem = key.private.to_public_key().to_pkcs1_pem(Default::default()).expect("PEM");
    let header = Header { kid: Some(key.kid.clone()), ..Header::new(Algorithm::HS256) };
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(pem.as_bytes())).expect("signing")
}

/// A local stand-in for the identity platform's JWKS endpoint; the served
/// key set can be changed (rotation) and requests are counted.
pub struct JwksServer {
    pub url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    pub requests: Arc<Mutex<usize>>,
    /// When set, every request gets a 503 (an identity platform outage).
    failing: Arc<Mutex<bool>>,
    /// When set, requests are read and never answered (a hung endpoint).
    hanging: Arc<Mutex<bool>>,
}

impl JwksServer {
    pub async fn start(keys: Vec<Value>) -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/common/discovery/v2.0/keys", listener.local_addr().expect("addr"));
        let keys = Arc::new(Mutex::new(keys));
        let requests = Arc::new(Mutex::new(0));
        let failing = Arc::new(Mutex::new(false));
        let hanging = Arc::new(Mutex::new(false));
        let (served, counted, down, hung) = (keys.clone(), requests.clone(), failing.clone(), hanging.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let body = json!({ "keys": *served.lock().unwrap() }).to_string();
                *counted.lock().unwrap() += 1;
                let status = if *down.lock().unwrap() { "503 Service Unavailable" } else { "200 OK" };
                let hang = *hung.lock().unwrap();
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    if hang {
                        // Holds the socket open, unanswered, until the peer gives up.
                        let _ = socket.read(&mut request).await;
                        return;
                    }
                    let response = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        JwksServer { url, keys, requests, failing, hanging }
    }

    /// Makes the endpoint take requests and never answer (or recover).
    pub fn set_hanging(&self, hanging: bool) {
        *self.hanging.lock().unwrap() = hanging;
    }

    /// Makes the endpoint answer 503 (or recover).
    pub fn set_failing(&self, failing: bool) {
        *self.failing.lock().unwrap() = failing;
    }

    /// Publishes a new key set (a rotation).
    pub fn set_keys(&self, keys: Vec<Value>) {
        *self.keys.lock().unwrap() = keys;
    }
}

/// A certificate credential's client assertion: RS256 with the app's key, for `audience`.
pub fn client_assertion(key_pem_path: &str, audience: &str, client_id: &str) -> String {
    let pem = std::fs::read(key_pem_path).expect("key file");
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).expect("RSA key");
    let claims = serde_json::json!({"aud": audience, "iss": client_id, "sub": client_id, "jti": "t1", "nbf": now(), "exp": now() + 600});
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key).expect("signing")
}

/// The edge's validationTokens check as it runs natively: RustCrypto's
/// RS256 (the Worker's is WebCrypto), whose future is ready at its first
/// poll, so no runtime is needed.
pub fn check_natively(
    tokens: Option<&Value>,
    tenants: &[String],
    keys: &graph_relay_edge::validation_tokens::Keys,
    policy: &graph_relay_edge::validation_tokens::Policy,
    now: u64,
) -> Result<usize, graph_relay_edge::validation_tokens::TokenError> {
    thread_local!(static RS256: graph_relay_edge::rs256::Native = Default::default());
    RS256.with(|rs256| {
        let check = graph_relay_edge::validation_tokens::check_batch(tokens, tenants, keys, policy, now, rs256);
        let check = std::pin::pin!(check);
        match std::future::Future::poll(check, &mut std::task::Context::from_waker(std::task::Waker::noop())) {
            std::task::Poll::Ready(verdict) => verdict,
            std::task::Poll::Pending => panic!("RustCrypto's check never waits"),
        }
    })
}
