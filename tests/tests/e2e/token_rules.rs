//! The validationTokens rules, natively (signatures by RustCrypto, where the
//! Worker uses WebCrypto: `rich_notifications` runs the matrix there): every
//! forgery of the matrix is refused for the right reason, and a valid token
//! passes.

use graph_relay_edge::validation_tokens::{Keys, Policy, TokenError, LEEWAY_SECONDS};
use graph_relay_tests::tokens::check_natively as check_batch;
use graph_relay_tests::tokens::{self, hs256_with_public_key, unsigned, valid_claims, SigningKey, APP_ID, TENANT};
use serde_json::{json, Value};

fn keys() -> Keys {
    let (key1, _) = SigningKey::pair();
    Keys::from_jwks(&json!({ "keys": [key1.jwk()] }).to_string()).unwrap()
}

fn policy() -> Policy {
    Policy { app_ids: vec![APP_ID.into()], allowed_tenants: vec![] }
}

fn check(tokens: Value) -> Result<usize, TokenError> {
    check_batch(Some(&tokens), &rich(), &keys(), &policy(), tokens::now())
}

/// The tenants of a batch with one rich item, of the tokens' tenant.
fn rich() -> Vec<String> {
    vec![TENANT.into()]
}

fn with(change: impl FnOnce(&mut Value)) -> String {
    let mut claims = valid_claims();
    change(&mut claims);
    SigningKey::pair().0.sign(&claims)
}

#[test]
fn a_valid_token_passes_in_v1_and_v2_forms() {
    assert_eq!(check(json!([with(|_| {})])), Ok(1));
    let v2 = with(|c| {
        c["iss"] = json!(format!("https://login.microsoftonline.com/{TENANT}/v2.0"));
        c.as_object_mut().unwrap().remove("appid");
        c["azp"] = json!(tokens::GRAPH_CALLER);
    });
    assert_eq!(check(json!([v2, with(|_| {})])), Ok(2));
}

#[test]
fn every_forgery_is_refused_for_its_reason() {
    let (key1, key2) = SigningKey::pair();
    let wrong_signature = {
        let impostor = SigningKey { kid: key1.kid.clone(), private: key2.private.clone() };
        impostor.sign(&valid_claims())
    };
    type Case = (&'static str, String, fn(&TokenError) -> bool);
    let cases: Vec<Case> = vec![
        (
            "wrong signature",
            wrong_signature,
            |e| matches!(e, TokenError::Rejected(0, m) if m.contains("InvalidSignature")),
        ),
        ("alg none", unsigned(&json!({"alg": "none", "kid": "key-1"}), &valid_claims()), |e| {
            matches!(e, TokenError::Malformed(0) | TokenError::Algorithm(0, _))
        }),
        (
            "HS256 with the public key",
            hs256_with_public_key(key1, &valid_claims()),
            |e| matches!(e, TokenError::Algorithm(0, a) if a == "HS256"),
        ),
        ("unknown kid", key2.sign(&valid_claims()), |e| e.is_unknown_key()),
        (
            "wrong aud",
            with(|c| c["aud"] = json!("someone-else")),
            |e| matches!(e, TokenError::Rejected(0, m) if m.contains("InvalidAudience")),
        ),
        ("wrong appid", with(|c| c["appid"] = json!("not-graph")), |e| matches!(e, TokenError::WrongCaller(0))),
        (
            "no caller",
            with(|c| {
                c.as_object_mut().unwrap().remove("appid");
            }),
            |e| matches!(e, TokenError::WrongCaller(0)),
        ),
        (
            "expired",
            with(|c| c["exp"] = json!(tokens::now() - 600)),
            |e| matches!(e, TokenError::Rejected(0, m) if m.contains("ExpiredSignature")),
        ),
        (
            "not yet valid",
            with(|c| c["nbf"] = json!(tokens::now() + 600)),
            |e| matches!(e, TokenError::Rejected(0, m) if m.contains("ImmatureSignature")),
        ),
        ("wrong issuer", with(|c| c["iss"] = json!("https://evil.example.com/")), |e| {
            matches!(e, TokenError::WrongIssuer(0))
        }),
        ("issuer of another tenant", with(|c| c["iss"] = json!("https://sts.windows.net/other-tenant/")), |e| {
            matches!(e, TokenError::WrongIssuer(0))
        }),
        ("garbage", "not.a.jwt".into(), |e| matches!(e, TokenError::Malformed(0))),
        (
            "no exp",
            with(|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            |e| matches!(e, TokenError::Rejected(0, m) if m == "missing required claim: exp"),
        ),
        (
            "no aud",
            with(|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
            |e| matches!(e, TokenError::Rejected(0, m) if m == "missing required claim: aud"),
        ),
    ];
    for (name, token, expected) in cases {
        let verdict = check(json!([token]));
        assert!(matches!(&verdict, Err(e) if expected(e)), "{name}: {verdict:?}");
    }
}

#[test]
fn one_bad_token_refuses_the_whole_batch() {
    let bad = with(|c| c["aud"] = json!("someone-else"));
    assert!(matches!(check(json!([with(|_| {}), bad])), Err(TokenError::Rejected(1, _))));
}

#[test]
fn tenants_outside_the_allow_list_are_refused() {
    let policy = Policy { app_ids: vec![APP_ID.into()], allowed_tenants: vec!["another-tenant".into()] };
    let verdict = check_batch(Some(&json!([with(|_| {})])), &rich(), &keys(), &policy, tokens::now());
    assert_eq!(verdict, Err(TokenError::TenantNotAllowed(0, TENANT.into())));
}

#[test]
fn every_rich_item_needs_a_token_of_its_tenant() {
    const OTHER: &str = "99999999-0000-0000-0000-000000000000";
    let other = with(|c| {
        c["tid"] = json!(OTHER);
        c["iss"] = json!(format!("https://login.microsoftonline.com/{OTHER}/v2.0"));
    });
    let (keys, policy) = (keys(), policy());
    let one = json!([with(|_| {})]);
    let both = json!([with(|_| {}), other]);
    let two_tenants = [TENANT.to_owned(), OTHER.to_owned()];
    assert_eq!(
        check_batch(Some(&one), &two_tenants, &keys, &policy, tokens::now()),
        Err(TokenError::TenantNotCovered(OTHER.into())),
        "a valid token does not vouch for another tenant's item"
    );
    assert_eq!(check_batch(Some(&both), &two_tenants, &keys, &policy, tokens::now()), Ok(2));
    assert_eq!(
        check_batch(Some(&one), &[TENANT.to_uppercase()], &keys, &policy, tokens::now()),
        Ok(1),
        "tenant ids are GUIDs"
    );
    assert_eq!(
        check_batch(Some(&one), &[String::new()], &keys, &policy, tokens::now()),
        Err(TokenError::TenantNotCovered(String::new())),
        "a rich item naming no tenant is vouched for by no token"
    );
    assert_eq!(
        check_batch(Some(&both), &[], &keys, &policy, tokens::now()),
        Ok(2),
        "tokens with only basic items still verify"
    );
}

#[test]
fn a_verified_token_is_remembered_yet_checked_again_for_time_tenants_and_policy() {
    let (keys, policy, now) = (keys(), policy(), tokens::now());
    let one = json!([with(|_| {})]);
    assert_eq!(check_batch(Some(&one), &rich(), &keys, &policy, now), Ok(1));
    assert_eq!(keys.verified_tokens(), 1);
    assert_eq!(check_batch(Some(&one), &rich(), &keys, &policy, now), Ok(1), "the next batch with the same token");

    let expired = now + 3600 + LEEWAY_SECONDS + 1;
    let expired = check_batch(Some(&one), &rich(), &keys, &policy, expired);
    assert_eq!(expired, Err(TokenError::Rejected(0, "ExpiredSignature".into())));
    let too_early = now - 60 - LEEWAY_SECONDS - 1;
    let too_early = check_batch(Some(&one), &rich(), &keys, &policy, too_early);
    assert_eq!(too_early, Err(TokenError::Rejected(0, "ImmatureSignature".into())));
    let two_tenants = [TENANT.to_owned(), "another-tenant".to_owned()];
    let uncovered = check_batch(Some(&one), &two_tenants, &keys, &policy, now);
    assert_eq!(uncovered, Err(TokenError::TenantNotCovered("another-tenant".into())));

    let other_app = Policy { app_ids: vec!["another-app".into()], allowed_tenants: vec![] };
    let verdict = check_batch(Some(&one), &rich(), &keys, &other_app, now);
    assert!(
        matches!(&verdict, Err(TokenError::Rejected(0, m)) if m.contains("InvalidAudience")),
        "another policy verifies again: {verdict:?}"
    );
    let forged = json!([with(|c| c["aud"] = json!("someone-else"))]);
    assert!(check_batch(Some(&forged), &rich(), &keys, &policy, now).is_err());
    assert_eq!(keys.verified_tokens(), 1, "refused tokens are not remembered");
    assert_eq!(keys.clone().verified_tokens(), 0, "other keys (a refetched JWKS) verify again");
}

#[test]
fn missing_null_and_malformed_token_lists() {
    let (keys, policy) = (keys(), policy());
    assert_eq!(check_batch(None, &rich(), &keys, &policy, tokens::now()), Err(TokenError::MissingForEncrypted));
    assert_eq!(check_batch(None, &[], &keys, &policy, tokens::now()), Ok(0), "basic notifications need no token");
    assert_eq!(check_batch(Some(&Value::Null), &[], &keys, &policy, tokens::now()), Err(TokenError::Null));
    assert_eq!(check_batch(Some(&json!([])), &rich(), &keys, &policy, tokens::now()), Err(TokenError::NotAnArray));
    assert_eq!(check_batch(Some(&json!("x")), &rich(), &keys, &policy, tokens::now()), Err(TokenError::NotAnArray));
    assert_eq!(check_batch(Some(&json!([1])), &rich(), &keys, &policy, tokens::now()), Err(TokenError::NotAnArray));
}

#[test]
fn an_audience_list_naming_us_passes_and_an_unusable_key_is_a_refusal_not_a_panic() {
    assert_eq!(check(json!([with(|c| c["aud"] = json!(["someone-else", APP_ID]))])), Ok(1));
    let (key1, _) = SigningKey::pair();
    let mut jwk = key1.jwk();
    jwk["n"] = json!("!!not base64url!!");
    let broken = Keys::from_jwks(&json!({ "keys": [jwk] }).to_string()).unwrap();
    let verdict = check_batch(Some(&json!([with(|_| {})])), &rich(), &broken, &policy(), tokens::now());
    assert!(matches!(&verdict, Err(TokenError::UnusableKey(0, kid, _)) if *kid == key1.kid), "{verdict:?}");
}

#[test]
fn a_jwks_without_usable_keys_is_an_error() {
    assert!(Keys::from_jwks("{}").is_err());
    assert!(Keys::from_jwks(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).is_err());
}
