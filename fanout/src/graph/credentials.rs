//! Access tokens for Graph: application permissions by client credentials
//! (secret or certificate assertion), delegated permissions by the refresh
//! token `graph-relay login` stored (device-code flow), in a 0600 file.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Mutex;

use super::catalog::Permission;
use super::plan::GraphSettings;
use crate::graph::now_ms;

/// What Graph needs to be asked for: everything the app was granted.
const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
const DELEGATED_SCOPE: &str = "https://graph.microsoft.com/.default offline_access";

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("no credentials for {0} permissions: {1}")]
    Missing(Permission, &'static str),
    #[error("the identity platform refused: {0}")]
    Refused(String),
    #[error("calling the identity platform: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("{0}")]
    Io(String),
}

/// The delegated sign-ins `graph-relay login` keeps: one refresh token per account type.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct StoredLogins {
    pub refresh_tokens: HashMap<Permission, String>,
}

/// The app's secret or certificate, and the delegated login file.
pub struct Credentials {
    settings: GraphSettings,
    secret: Option<String>,
    /// The certificate's SHA-1 thumbprint (`x5t`) and private key.
    certificate: Option<(String, jsonwebtoken::EncodingKey)>,
    token_file: Option<PathBuf>,
    http: reqwest::Client,
    /// Access tokens until a minute before they expire.
    cache: Mutex<HashMap<Permission, (String, Instant)>>,
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: String,
    expires_in: u64,
    refresh_token: Option<String>,
}

impl Credentials {
    /// Reads the secret from its environment variable and the certificate files now, so a
    /// misconfiguration fails at start.
    pub fn load(
        settings: &GraphSettings,
        base_dir: &Path,
        http: reqwest::Client,
    ) -> Result<Credentials, CredentialError> {
        let secret = match &settings.client_secret_env {
            Some(var) => Some(
                std::env::var(var)
                    .map_err(|_| CredentialError::Io(format!("environment variable {var} is not set")))?,
            ),
            None => None,
        };
        let certificate = match (&settings.certificate, &settings.certificate_key) {
            (Some(cert), Some(key)) => Some(load_certificate(&base_dir.join(cert), &base_dir.join(key))?),
            (Some(_), None) | (None, Some(_)) => {
                return Err(CredentialError::Io("certificate and certificate_key go together".into()))
            }
            (None, None) => None,
        };
        Ok(Credentials {
            settings: settings.clone(),
            secret,
            certificate,
            token_file: settings.token_file.as_ref().map(|f| base_dir.join(f)),
            http,
            cache: Mutex::default(),
        })
    }

    fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.settings.login_url.trim_end_matches('/'), self.settings.tenant_id)
    }

    /// A bearer token for calls made with `permission`.
    pub async fn access_token(&self, permission: Permission) -> Result<String, CredentialError> {
        let mut cache = self.cache.lock().await;
        if let Some((token, until)) = cache.get(&permission) {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let reply = match permission {
            Permission::Application => self.client_credentials().await?,
            delegated => self.refresh_delegated(delegated).await?,
        };
        let until = Instant::now() + Duration::from_secs(reply.expires_in.saturating_sub(60));
        cache.insert(permission, (reply.access_token.clone(), until));
        Ok(reply.access_token)
    }

    async fn client_credentials(&self) -> Result<TokenReply, CredentialError> {
        let mut form = vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", self.settings.client_id.clone()),
            ("scope", GRAPH_SCOPE.to_string()),
        ];
        if let Some((thumbprint, key)) = &self.certificate {
            form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()));
            form.push(("client_assertion", self.assertion(thumbprint, key)?));
        } else if let Some(secret) = &self.secret {
            form.push(("client_secret", secret.clone()));
        } else {
            return Err(CredentialError::Missing(Permission::Application, "set client_secret_env or certificate"));
        }
        self.post_token(&form).await
    }

    /// The signed JWT that proves possession of the certificate's key.
    fn assertion(&self, thumbprint: &str, key: &jsonwebtoken::EncodingKey) -> Result<String, CredentialError> {
        let now = now_ms() / 1000;
        let claims = json!({
            "aud": self.token_url(), "iss": self.settings.client_id, "sub": self.settings.client_id,
            "jti": super::random_token(16), "nbf": now, "iat": now, "exp": now + 600,
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.x5t = Some(thumbprint.to_string());
        jsonwebtoken::encode(&header, &claims, key)
            .map_err(|e| CredentialError::Io(format!("signing the assertion: {e}")))
    }

    async fn refresh_delegated(&self, permission: Permission) -> Result<TokenReply, CredentialError> {
        let path = self
            .token_file
            .as_ref()
            .ok_or(CredentialError::Missing(permission, "set token_file and run `graph-relay login`"))?;
        let mut logins = read_login(path)?;
        let Some(refresh_token) = logins.refresh_tokens.get(&permission).cloned() else {
            return Err(CredentialError::Missing(
                permission,
                "no sign-in of that account type: run `graph-relay login --account ...`",
            ));
        };
        let form = [
            ("grant_type", "refresh_token".to_string()),
            ("client_id", self.settings.client_id.clone()),
            ("refresh_token", refresh_token),
            ("scope", DELEGATED_SCOPE.to_string()),
        ];
        let reply = self.post_token(&form).await?;
        // Refresh tokens rotate: keep the new one, or the next refresh fails.
        if let Some(refresh_token) = &reply.refresh_token {
            logins.refresh_tokens.insert(permission, refresh_token.clone());
            write_login(path, &logins)?;
        }
        Ok(reply)
    }

    async fn post_token(&self, form: &[(&str, String)]) -> Result<TokenReply, CredentialError> {
        let response = self.http.post(self.token_url()).form(form).send().await?;
        if !response.status().is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(CredentialError::Refused(body));
        }
        Ok(response.json().await?)
    }
}

/// The DER bytes of the certificate in a PEM file; errors name the file.
pub fn certificate_der(path: &Path) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (_, parsed) = x509_parser::pem::parse_x509_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(parsed.contents)
}

fn load_certificate(cert: &Path, key: &Path) -> Result<(String, jsonwebtoken::EncodingKey), CredentialError> {
    use sha1::Digest;
    let thumbprint = URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(certificate_der(cert).map_err(CredentialError::Io)?));
    let key_pem = std::fs::read(key).map_err(|e| CredentialError::Io(format!("{}: {e}", key.display())))?;
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&key_pem)
        .map_err(|e| CredentialError::Io(format!("{}: {e}", key.display())))?;
    Ok((thumbprint, key))
}

pub fn read_login(path: &Path) -> Result<StoredLogins, CredentialError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CredentialError::Io(format!("{}: {e} (run `graph-relay login`)", path.display())))?;
    serde_json::from_str(&text).map_err(|e| CredentialError::Io(format!("{}: {e}", path.display())))
}

/// Writes the login file with mode 0600, replacing it atomically.
pub fn write_login(path: &Path, login: &StoredLogins) -> Result<(), CredentialError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| CredentialError::Io(format!("{}: {e}", path.display()));
    let temporary = path.with_extension("tmp");
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary).map_err(io)?;
    file.write_all(serde_json::to_string(login).unwrap_or_default().as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&temporary, path).map_err(io)
}

/// `graph-relay login`: the device-code flow; prints the sign-in instructions, waits, stores the refresh token.
pub async fn device_login(settings: &GraphSettings, path: &Path, account: Permission) -> Result<(), CredentialError> {
    let http = reqwest::Client::new();
    let base = format!("{}/{}/oauth2/v2.0", settings.login_url.trim_end_matches('/'), settings.tenant_id);
    let start: serde_json::Value = http
        .post(format!("{base}/devicecode"))
        .form(&[("client_id", settings.client_id.as_str()), ("scope", DELEGATED_SCOPE)])
        .send()
        .await?
        .json()
        .await?;
    let device_code = start["device_code"].as_str().ok_or_else(|| CredentialError::Refused(start.to_string()))?;
    println!("{}", start["message"].as_str().unwrap_or("sign in with the code shown by the identity platform"));
    let interval = Duration::from_secs(start["interval"].as_u64().unwrap_or(5).max(1));
    loop {
        tokio::time::sleep(interval).await;
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", settings.client_id.as_str()),
            ("device_code", device_code),
        ];
        let reply: serde_json::Value = http.post(format!("{base}/token")).form(&form).send().await?.json().await?;
        match (reply["refresh_token"].as_str(), reply["error"].as_str()) {
            (Some(refresh_token), _) => {
                let mut logins = if path.exists() { read_login(path)? } else { StoredLogins::default() };
                logins.refresh_tokens.insert(account, refresh_token.into());
                write_login(path, &logins)?;
                println!("signed in; refresh token stored in {} (mode 0600)", path.display());
                return Ok(());
            }
            (None, Some("authorization_pending" | "slow_down")) => continue,
            _ => return Err(CredentialError::Refused(reply.to_string())),
        }
    }
}
