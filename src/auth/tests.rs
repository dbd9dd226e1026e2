//! HS256 end to end inside the crate: mint, verify, and each way a token is refused. The JWKS
//! paths need an HTTP server and are tested in `tests/auth_tokens.rs`.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use super::*;

const SECRET: &str = "a-development-secret-of-32-bytes!";

async fn hs256(extra: impl FnOnce(&mut AuthConfig)) -> Authenticator {
    let mut cfg = AuthConfig { hs256_secret: Some(Secret::new(SECRET)), ..AuthConfig::default() };
    extra(&mut cfg);
    Authenticator::from_config(&cfg).await.unwrap()
}

fn claims(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn sign(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn unix_now() -> i64 {
    now() as i64
}

#[tokio::test]
async fn minted_tokens_verify_with_their_claims() {
    let auth = hs256(|_| {}).await;
    let token = mint_hs256(
        SECRET,
        "warehouse_lead",
        claims(json!({"sub": "u7", "warehouses": ["W1", "W2"]})),
        Duration::from_secs(60),
    )
    .unwrap();
    let p = auth.authenticate(&token).await.unwrap();
    assert_eq!(&*p.role, "warehouse_lead");
    assert_eq!(p.subject.as_deref(), Some("u7"));
    assert_eq!(p.claim("warehouses"), Some(&json!(["W1", "W2"])));
    let exp = p.expires_at.unwrap();
    assert!((exp - unix_now() - 60).abs() <= 1, "exp {exp}");
    let via_header = auth.from_header(Some(&format!("Bearer {token}"))).await.unwrap().unwrap();
    assert_eq!(via_header, p);
    assert_eq!(auth.from_header(Some(&format!("bearer  {token}"))).await.unwrap().unwrap(), p);
}

#[tokio::test]
async fn no_token_is_unauthenticated() {
    let auth = hs256(|_| {}).await;
    assert!(auth.from_header(None).await.unwrap().is_none());
    assert_eq!(auth.require(None).await.unwrap_err().code(), "UNAUTHENTICATED");
    assert_eq!(auth.authenticate("  ").await.unwrap_err().code(), "UNAUTHENTICATED");
    assert!(matches!(auth.from_header(Some("Basic dXNlcjpwdw==")).await, Err(AuthError::NotBearer)));
    assert!(matches!(auth.from_header(Some("Bearer")).await, Err(AuthError::NotBearer)));
}

#[tokio::test]
async fn no_key_configured_refuses_everything() {
    let auth = Authenticator::from_config(&AuthConfig::default()).await.unwrap();
    let token = mint_hs256(SECRET, "admin", Map::new(), Duration::from_secs(60)).unwrap();
    let err = auth.authenticate(&token).await.unwrap_err();
    assert!(matches!(err, AuthError::NotConfigured));
    assert_eq!(err.code(), "UNAUTHENTICATED");
}

#[tokio::test]
async fn configuration_is_checked() {
    let short = AuthConfig { hs256_secret: Some(Secret::new("short")), ..AuthConfig::default() };
    assert!(matches!(Authenticator::from_config(&short).await, Err(AuthConfigError::WeakSecret)));
    let ftp = AuthConfig { jwks_url: Some("ftp://keys.example/jwks".into()), ..AuthConfig::default() };
    assert!(matches!(Authenticator::from_config(&ftp).await, Err(AuthConfigError::JwksUrl(_))));
    let no_role = AuthConfig { role_claim: " ".into(), ..AuthConfig::default() };
    assert!(matches!(Authenticator::from_config(&no_role).await, Err(AuthConfigError::RoleClaim)));
}

#[tokio::test]
async fn refusals_name_the_problem() {
    let auth = hs256(|_| {}).await;
    let now = unix_now();

    let expired = sign(SECRET, &json!({"role": "analyst", "exp": now - 1}));
    let err = auth.authenticate(&expired).await.unwrap_err();
    assert_eq!(err.code(), "TOKEN_EXPIRED", "{err}");

    let early = sign(SECRET, &json!({"role": "analyst", "exp": now + 600, "nbf": now + 300}));
    assert!(matches!(auth.authenticate(&early).await, Err(AuthError::NotYetValid { .. })));

    let forever = sign(SECRET, &json!({"role": "analyst"}));
    assert!(matches!(auth.authenticate(&forever).await, Err(AuthError::NoExpiry)));

    let other_secret = sign("another-secret-that-is-32-bytes-long", &json!({"role": "admin", "exp": now + 60}));
    assert!(matches!(auth.authenticate(&other_secret).await, Err(AuthError::BadSignature)));

    let no_role = sign(SECRET, &json!({"exp": now + 60}));
    assert!(matches!(auth.authenticate(&no_role).await, Err(AuthError::NoRole { .. })));

    assert!(matches!(auth.authenticate("not-a-jwt").await, Err(AuthError::Malformed(_))));
}

#[tokio::test]
async fn a_tampered_payload_fails_the_signature() {
    let auth = hs256(|_| {}).await;
    let token = mint_hs256(SECRET, "analyst", Map::new(), Duration::from_secs(60)).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["role"] = json!("admin");
    let forged = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(payload.to_string()), parts[2]);
    let err = auth.authenticate(&forged).await.unwrap_err();
    assert!(matches!(err, AuthError::BadSignature), "{err}");
    assert!(!err.to_string().contains(&forged));
}

#[tokio::test]
async fn unsigned_tokens_are_refused() {
    let auth = hs256(|_| {}).await;
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(json!({"role": "admin", "exp": unix_now() + 60}).to_string());
    for token in [format!("{header}.{payload}."), format!("{header}.{payload}")] {
        let err = auth.authenticate(&token).await.unwrap_err();
        assert!(matches!(err, AuthError::Unsigned | AuthError::Malformed(_)), "{err}");
        assert_eq!(err.code(), "INVALID_TOKEN");
    }
}

#[tokio::test]
async fn only_hs256_without_an_issuer() {
    let auth = hs256(|_| {}).await;
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS512),
        &json!({"role": "admin", "exp": unix_now() + 60}),
        &key,
    )
    .unwrap();
    let err = auth.authenticate(&token).await.unwrap_err();
    assert!(matches!(&err, AuthError::AlgorithmNotAccepted { accepted, .. } if accepted == "HS256"), "{err}");
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"hs256"}"#);
    let odd = format!("{header}.{}.c2ln", URL_SAFE_NO_PAD.encode("{}"));
    let err = auth.authenticate(&odd).await.unwrap_err();
    assert_eq!(err.to_string(), "tokens signed with `hs256` are not accepted here (accepted: HS256)");
}

#[tokio::test]
async fn leeway_and_issuer_apply_to_verified_tokens() {
    let auth = hs256(|c| {
        c.leeway_seconds = 30;
        c.issuer = Some("opslive-dev".into());
        c.audience = vec!["opslive".into()];
    })
    .await;
    let now = unix_now();
    let recent = sign(SECRET, &json!({"role": "a", "exp": now - 5, "iss": "opslive-dev", "aud": "opslive"}));
    assert!(auth.authenticate(&recent).await.is_ok());
    let stranger = sign(SECRET, &json!({"role": "a", "exp": now + 60, "iss": "elsewhere", "aud": "opslive"}));
    assert!(matches!(auth.authenticate(&stranger).await, Err(AuthError::WrongIssuer { .. })));
    let cfg = AuthConfig {
        hs256_secret: Some(Secret::new(SECRET)),
        issuer: Some("opslive-dev".into()),
        audience: vec!["opslive".into()],
        ..AuthConfig::default()
    };
    let minted = mint_for(&cfg, "finance", Map::new(), Duration::from_secs(60)).unwrap();
    assert_eq!(&*auth.authenticate(&minted).await.unwrap().role, "finance");
}

#[tokio::test]
async fn connection_init_payloads_in_the_usual_shapes() {
    let auth = hs256(|_| {}).await;
    let token = mint_hs256(SECRET, "support_lead", Map::new(), Duration::from_secs(60)).unwrap();
    let bearer = format!("Bearer {token}");
    for payload in [
        json!({"Authorization": bearer}),
        json!({"authorization": bearer}),
        json!({"headers": {"Authorization": bearer}}),
        json!({"token": token}),
        json!({"authToken": token}),
    ] {
        let p = auth.from_init_payload(Some(&payload)).await.unwrap();
        assert_eq!(p.map(|p| p.role).as_deref(), Some("support_lead"), "{payload}");
    }
    assert!(auth.from_init_payload(None).await.unwrap().is_none());
    assert!(auth.from_init_payload(Some(&json!({"other": 1}))).await.unwrap().is_none());
    assert!(auth.from_init_payload(Some(&json!({"Authorization": 5}))).await.is_err());
    let expired = sign(SECRET, &json!({"role": "a", "exp": unix_now() - 10}));
    let err = auth.from_init_payload(Some(&json!({"token": expired}))).await.unwrap_err();
    assert_eq!(err.code(), "TOKEN_EXPIRED");
}
