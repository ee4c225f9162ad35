//! A JWT taken apart: its header and claims decoded, the signing input and
//! the signature kept for the signature check (which is the platform's: see
//! `rs256`). Only what Graph's validationTokens use is read.
//!
//! Nothing here trusts the token: the claims are checked by
//! `validation_tokens` only after the signature verified.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

/// The header fields the check reads.
#[derive(Debug, Deserialize)]
pub struct Header {
    pub alg: String,
    #[serde(default)]
    pub kid: Option<String>,
}

/// `aud`: one string or several.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn any(&self, wanted: &[String]) -> bool {
        match self {
            Audience::One(aud) => wanted.iter().any(|w| w == aud),
            Audience::Many(auds) => auds.iter().any(|aud| wanted.iter().any(|w| w == aud)),
        }
    }
}

/// The claims the check reads; missing ones are refused by name.
#[derive(Debug, Deserialize)]
pub struct Claims {
    pub iss: Option<String>,
    pub aud: Option<Audience>,
    pub exp: Option<f64>,
    pub nbf: Option<f64>,
    pub tid: Option<String>,
    pub appid: Option<String>,
    pub azp: Option<String>,
}

/// A compact JWS, decoded.
#[derive(Debug)]
pub struct Token<'a> {
    pub header: Header,
    pub claims: Claims,
    /// `header.payload` as sent: what the signature covers.
    pub signed: &'a str,
    pub signature: Vec<u8>,
}

/// Splits and decodes `token`; `None` when it is not a JWT.
pub fn parse(token: &str) -> Option<Token<'_>> {
    let mut parts = token.split('.');
    let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()?;
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    let signed = &token[..token.len() - token.rsplit('.').next()?.len() - 1];
    Some(Token { header, claims, signed, signature })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(value: &str) -> String {
        URL_SAFE_NO_PAD.encode(value)
    }

    #[test]
    fn a_token_comes_apart_into_header_claims_signing_input_and_signature() {
        let (header, claims) = (encode(r#"{"alg":"RS256","kid":"k1"}"#), encode(r#"{"aud":["a","b"],"exp":5}"#));
        let token = format!("{header}.{claims}.{}", encode("sig"));
        let parsed = parse(&token).unwrap();
        assert_eq!((parsed.header.alg.as_str(), parsed.header.kid.as_deref()), ("RS256", Some("k1")));
        assert_eq!(parsed.signed, format!("{header}.{claims}"));
        assert_eq!(parsed.signature, b"sig");
        assert!(parsed.claims.aud.unwrap().any(&["b".to_owned()]));
        assert_eq!(parsed.claims.exp, Some(5.0));
    }

    #[test]
    fn what_is_not_a_jwt_is_none() {
        let header = encode(r#"{"alg":"RS256"}"#);
        for token in ["", "a.b", "a.b.c.d", &format!("{header}.!!.{header}"), &format!("{header}.{header}")] {
            assert!(parse(token).is_none(), "{token:?}");
        }
    }
}
