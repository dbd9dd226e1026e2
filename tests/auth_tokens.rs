//! Tokens end to end: HS256 development tokens, RS256 and ES256 tokens verified with keys from
//! an issuer's JWKS (served by a local HTTP server on a free port, which counts its requests),
//! key rotation, the refetch rate limit, an unreachable issuer, and `opslive token` through the
//! real binary.
//!
//! Test keys are PEM files generated once with OpenSSL (fixtures/keys/README.md).

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use opslive::auth::{AuthError, Authenticator, Secret};
use opslive::config::{AuthConfig, Config};
use serde_json::{Value, json};
use tokio::sync::watch;

const SECRET: &str = "integration-test-secret-32-bytes-long";

/// A signing key of the fake issuer.
struct Key {
    kid: &'static str,
    alg: Algorithm,
    encoding: EncodingKey,
    /// What the issuer publishes for it.
    jwk: Jwk,
}

impl Key {
    fn rsa(kid: &'static str, pem: &[u8]) -> Key {
        let encoding = EncodingKey::from_rsa_pem(pem).unwrap();
        Key::with(kid, Algorithm::RS256, encoding)
    }

    fn ec(kid: &'static str, pem: &[u8]) -> Key {
        let encoding = EncodingKey::from_ec_pem(pem).unwrap();
        Key::with(kid, Algorithm::ES256, encoding)
    }

    fn with(kid: &'static str, alg: Algorithm, encoding: EncodingKey) -> Key {
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).unwrap();
        jwk.common.key_id = Some(kid.to_string());
        Key { kid, alg, encoding, jwk }
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_as(self.alg, self.kid, claims)
    }

    fn sign_as(&self, alg: Algorithm, kid: &str, claims: &Value) -> String {
        let header = Header { kid: Some(kid.to_string()), ..Header::new(alg) };
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

fn rsa_a() -> Key {
    Key::rsa("rsa-a", include_bytes!("../fixtures/keys/rsa-a.pem"))
}
fn rsa_b() -> Key {
    Key::rsa("rsa-b", include_bytes!("../fixtures/keys/rsa-b.pem"))
}
fn ec_a() -> Key {
    Key::ec("ec-a", include_bytes!("../fixtures/keys/ec-a.pem"))
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn claims(role: &str) -> Value {
    json!({"role": role, "sub": "someone", "exp": now() + 600})
}

/// What the fake issuer answers on `/jwks.json`.
#[derive(Clone)]
enum Answer {
    Keys(String),
    Status(StatusCode),
}

/// An issuer's JWKS endpoint on 127.0.0.1:<free port>; `fetches` counts every request it saw.
struct Issuer {
    url: String,
    answer: Arc<Mutex<Answer>>,
    fetches: watch::Receiver<usize>,
}

#[derive(Clone)]
struct IssuerState {
    answer: Arc<Mutex<Answer>>,
    fetches: Arc<watch::Sender<usize>>,
}

async fn jwks(State(state): State<IssuerState>) -> Response {
    state.fetches.send_modify(|n| *n += 1);
    let answer = state.answer.lock().unwrap().clone();
    match answer {
        Answer::Keys(body) => ([("content-type", "application/json")], body).into_response(),
        Answer::Status(status) => status.into_response(),
    }
}

impl Issuer {
    async fn start(keys: &[&Key]) -> Issuer {
        let answer = Arc::new(Mutex::new(Answer::Keys(key_set(keys))));
        let (tx, fetches) = watch::channel(0);
        let state = IssuerState { answer: answer.clone(), fetches: Arc::new(tx) };
        let app = Router::new().route("/jwks.json", get(jwks)).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Issuer { url: format!("http://{addr}/jwks.json"), answer, fetches }
    }

    fn publish(&self, keys: &[&Key]) {
        *self.answer.lock().unwrap() = Answer::Keys(key_set(keys));
    }

    fn fail(&self, status: StatusCode) {
        *self.answer.lock().unwrap() = Answer::Status(status);
    }

    fn fetches(&self) -> usize {
        *self.fetches.borrow()
    }

    /// Waits until the issuer has seen at least `n` requests.
    async fn wait_fetches(&self, n: usize) {
        let mut rx = self.fetches.clone();
        tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|seen| *seen >= n))
            .await
            .unwrap_or_else(|_| panic!("the issuer saw {} fetches, not {n}, within 20 s", self.fetches()))
            .unwrap();
    }

    fn config(&self, refresh: Duration, min_refetch: Duration) -> AuthConfig {
        AuthConfig {
            jwks_url: Some(self.url.clone()),
            jwks_refresh: refresh,
            jwks_min_refetch: min_refetch,
            ..AuthConfig::default()
        }
    }
}

fn key_set(keys: &[&Key]) -> String {
    serde_json::to_string(&JwkSet { keys: keys.iter().map(|k| k.jwk.clone()).collect() }).unwrap()
}

const LONG: Duration = Duration::from_secs(3600);

fn hs256_config() -> AuthConfig {
    AuthConfig { hs256_secret: Some(Secret::new(SECRET)), ..AuthConfig::default() }
}

fn sign_hs256(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret)).unwrap()
}

#[tokio::test]
async fn hs256_tokens_and_their_refusals() {
    let auth = Authenticator::from_config(&hs256_config()).await.unwrap();
    let ok = sign_hs256(SECRET.as_bytes(), &claims("ops_manager"));
    let p = auth.from_header(Some(&format!("Bearer {ok}"))).await.unwrap().unwrap();
    assert_eq!(&*p.role, "ops_manager");

    let cases: Vec<(&str, String, &str)> = vec![
        ("expired", sign_hs256(SECRET.as_bytes(), &json!({"role": "a", "exp": now() - 1})), "TOKEN_EXPIRED"),
        (
            "not yet valid",
            sign_hs256(SECRET.as_bytes(), &json!({"role": "a", "exp": now() + 600, "nbf": now() + 60})),
            "INVALID_TOKEN",
        ),
        ("wrong secret", sign_hs256(b"some-other-secret-of-32-bytes-or-more", &claims("admin")), "INVALID_TOKEN"),
        ("tampered", tamper(&ok, |c| c["role"] = json!("admin")), "INVALID_TOKEN"),
        ("alg none", unsigned(&claims("admin")), "INVALID_TOKEN"),
        ("garbage", "abc.def.ghi".into(), "INVALID_TOKEN"),
    ];
    for (what, token, code) in cases {
        let err = auth.authenticate(&token).await.expect_err(what);
        assert_eq!(err.code(), code, "{what}: {err}");
        assert!(!err.to_string().contains(&token), "{what}: the message repeats the token: {err}");
    }
    assert_eq!(auth.require(None).await.unwrap_err().code(), "UNAUTHENTICATED");
}

#[tokio::test]
async fn issuer_and_audience_are_checked_when_configured() {
    let cfg =
        AuthConfig { issuer: Some("https://id.test/".into()), audience: vec!["opslive".into()], ..hs256_config() };
    let auth = Authenticator::from_config(&cfg).await.unwrap();
    let token = |iss: &str, aud: Value| {
        sign_hs256(SECRET.as_bytes(), &json!({"role": "finance", "exp": now() + 60, "iss": iss, "aud": aud}))
    };
    assert!(auth.authenticate(&token("https://id.test/", json!(["other", "opslive"]))).await.is_ok());
    let wrong_iss = auth.authenticate(&token("https://evil.test/", json!("opslive"))).await.unwrap_err();
    assert!(matches!(wrong_iss, AuthError::WrongIssuer { .. }), "{wrong_iss}");
    let wrong_aud = auth.authenticate(&token("https://id.test/", json!("grafana"))).await.unwrap_err();
    assert!(matches!(wrong_aud, AuthError::WrongAudience { .. }), "{wrong_aud}");
}

#[tokio::test]
async fn rs256_and_es256_verify_with_the_issuers_keys() {
    let (rsa, ec, other) = (rsa_a(), ec_a(), rsa_b());
    let issuer = Issuer::start(&[&rsa, &ec]).await;
    let auth = Authenticator::from_config(&issuer.config(LONG, LONG)).await.unwrap();
    assert_eq!(issuer.fetches(), 1, "one fetch at start");

    let p = auth.authenticate(&rsa.sign(&claims("finance"))).await.unwrap();
    assert_eq!(&*p.role, "finance");
    let p = auth.authenticate(&ec.sign(&claims("support_lead"))).await.unwrap();
    assert_eq!(&*p.role, "support_lead");

    // Another key's signature under a published kid.
    let forged = other.sign_as(Algorithm::RS256, "rsa-a", &claims("admin"));
    assert!(matches!(auth.authenticate(&forged).await, Err(AuthError::BadSignature)));
    // The algorithm must be one the named key is for: an EC signature under the RSA key's kid,
    // and RS384 under a key published for RS256.
    let wrong_family = ec.sign_as(Algorithm::ES256, "rsa-a", &claims("admin"));
    assert!(matches!(auth.authenticate(&wrong_family).await, Err(AuthError::KeyMismatch { .. })));
    let wrong_alg = rsa.sign_as(Algorithm::RS384, "rsa-a", &claims("admin"));
    assert!(matches!(auth.authenticate(&wrong_alg).await, Err(AuthError::KeyMismatch { .. })));
    // Claims rules apply as for HS256.
    let expired = rsa.sign(&json!({"role": "a", "exp": now() - 1}));
    assert_eq!(auth.authenticate(&expired).await.unwrap_err().code(), "TOKEN_EXPIRED");
    assert!(matches!(
        auth.authenticate(&tamper(&rsa.sign(&claims("analyst")), |c| c["role"] = json!("admin"))).await,
        Err(AuthError::BadSignature)
    ));
    assert!(matches!(auth.authenticate(&unsigned(&claims("admin"))).await, Err(AuthError::Unsigned)));
    // No secret configured: HS256 is not accepted at all.
    let hs = sign_hs256(SECRET.as_bytes(), &claims("admin"));
    assert!(matches!(auth.authenticate(&hs).await, Err(AuthError::AlgorithmNotAccepted { .. })));
    assert_eq!(issuer.fetches(), 1, "no refetch for tokens naming known keys");
}

/// The classic confusion: an HS256 token whose HMAC key is the issuer's RSA *public* key, which
/// anyone can download. It must never verify, with or without an HS256 secret configured.
#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let rsa = rsa_a();
    let issuer = Issuer::start(&[&rsa]).await;
    let public_pem = include_bytes!("../fixtures/keys/rsa-a.pub.pem");
    let Some(Value::String(n)) = serde_json::to_value(&rsa.jwk).unwrap().get("n").cloned() else {
        panic!("an RSA JWK has `n`")
    };
    let forgeries = [sign_hs256(public_pem, &claims("admin")), sign_hs256(n.as_bytes(), &claims("admin")), {
        let header = Header { kid: Some("rsa-a".into()), ..Header::new(Algorithm::HS256) };
        jsonwebtoken::encode(&header, &claims("admin"), &EncodingKey::from_secret(public_pem)).unwrap()
    }];
    let jwks_only = Authenticator::from_config(&issuer.config(LONG, LONG)).await.unwrap();
    let both = Authenticator::from_config(&AuthConfig {
        hs256_secret: Some(Secret::new(SECRET)),
        ..issuer.config(LONG, LONG)
    })
    .await
    .unwrap();
    for token in &forgeries {
        let err = jwks_only.authenticate(token).await.unwrap_err();
        assert!(matches!(err, AuthError::AlgorithmNotAccepted { .. }), "{err}");
        let err = both.authenticate(token).await.unwrap_err();
        assert!(matches!(err, AuthError::BadSignature), "{err}");
    }
}

#[tokio::test]
async fn rotation_new_key_after_refetch_old_key_gone_after_refresh() {
    let (old, new) = (rsa_a(), rsa_b());
    let issuer = Issuer::start(&[&old]).await;
    let auth = Authenticator::from_config(&issuer.config(Duration::from_millis(300), LONG)).await.unwrap();
    let old_token = old.sign(&claims("analyst"));
    let new_token = new.sign(&claims("analyst"));
    assert!(auth.authenticate(&old_token).await.is_ok());

    // The issuer announces the new key: a token naming it makes opslive refetch at once,
    // without waiting for the refresh timer (LONG rate limit: this is the one allowed refetch).
    issuer.publish(&[&old, &new]);
    assert_eq!(&*auth.authenticate(&new_token).await.unwrap().role, "analyst");
    assert!(auth.authenticate(&old_token).await.is_ok(), "both keys are published");

    // The old key is withdrawn. Once a refresh has fetched the new set (the second fetch after
    // the change has started, so the first has been installed), old-key tokens are refused.
    issuer.publish(&[&new]);
    let seen = issuer.fetches();
    issuer.wait_fetches(seen + 2).await;
    let err = auth.authenticate(&old_token).await.unwrap_err();
    assert!(matches!(&err, AuthError::UnknownKey { kid } if kid == "rsa-a"), "{err}");
    assert!(auth.authenticate(&new_token).await.is_ok());
}

#[tokio::test]
async fn unknown_kids_cause_one_refetch_not_a_storm() {
    let (known, stranger) = (rsa_a(), rsa_b());
    let issuer = Issuer::start(&[&known]).await;
    let auth = Authenticator::from_config(&issuer.config(LONG, LONG)).await.unwrap();
    assert_eq!(issuer.fetches(), 1);

    // 100 requests at once, each naming a different unknown key, then 100 more one by one.
    let burst: Vec<_> = (0..100)
        .map(|i| {
            let (auth, token) =
                (auth.clone(), stranger.sign_as(Algorithm::RS256, &format!("made-up-{i}"), &claims("admin")));
            tokio::spawn(async move { auth.authenticate(&token).await })
        })
        .collect();
    for task in burst {
        let err = task.await.unwrap().unwrap_err();
        assert!(matches!(err, AuthError::UnknownKey { .. }), "{err}");
    }
    for i in 0..100 {
        let token = stranger.sign_as(Algorithm::RS256, &format!("later-{i}"), &claims("admin"));
        assert!(matches!(auth.authenticate(&token).await, Err(AuthError::UnknownKey { .. })));
    }
    assert_eq!(issuer.fetches(), 2, "the start fetch and one refetch");
    assert!(auth.authenticate(&known.sign(&claims("analyst"))).await.is_ok());
}

#[tokio::test]
async fn cached_keys_serve_while_the_issuer_is_down() {
    let key = rsa_a();
    let issuer = Issuer::start(&[&key]).await;
    let auth = Authenticator::from_config(&issuer.config(Duration::from_millis(200), LONG)).await.unwrap();
    let token = key.sign(&claims("ops_manager"));
    assert!(auth.authenticate(&token).await.is_ok());

    issuer.fail(StatusCode::SERVICE_UNAVAILABLE);
    let seen = issuer.fetches();
    issuer.wait_fetches(seen + 2).await;
    assert!(auth.authenticate(&token).await.is_ok(), "failed refreshes keep the cached keys");

    // A broken answer (not a key set) does not replace them either.
    *issuer.answer.lock().unwrap() = Answer::Keys("<html>maintenance</html>".into());
    let seen = issuer.fetches();
    issuer.wait_fetches(seen + 2).await;
    assert!(auth.authenticate(&token).await.is_ok());
}

#[tokio::test]
async fn an_issuer_down_at_start_is_unavailable_then_recovers() {
    let key = ec_a();
    let issuer = Issuer::start(&[&key]).await;
    issuer.fail(StatusCode::BAD_GATEWAY);
    let auth = Authenticator::from_config(&issuer.config(LONG, Duration::ZERO)).await.unwrap();
    let token = key.sign(&claims("warehouse_lead"));
    let err = auth.authenticate(&token).await.unwrap_err();
    assert_eq!(err.code(), "AUTH_UNAVAILABLE", "{err}");
    assert!(err.to_string().contains("502"), "{err}");

    issuer.publish(&[&key]);
    assert_eq!(&*auth.authenticate(&token).await.unwrap().role, "warehouse_lead");

    // Nothing listening at all: still a clear, non-fatal answer.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let gone = AuthConfig { jwks_url: Some(format!("http://127.0.0.1:{port}/jwks.json")), ..AuthConfig::default() };
    let auth = Authenticator::from_config(&gone).await.unwrap();
    assert_eq!(auth.authenticate(&token).await.unwrap_err().code(), "AUTH_UNAVAILABLE");
}

#[tokio::test]
async fn token_command_mints_what_the_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opslive.toml");
    std::fs::write(
        &path,
        format!(
            "[auth]\nhs256_secret = \"{SECRET}\"\nrole_claim = \"https://opslive.dev/claims.role\"\nissuer = \"opslive-dev\"\naudience = \"opslive\"\n"
        ),
    )
    .unwrap();
    let out = opslive(&[
        "token",
        "--config",
        path.to_str().unwrap(),
        "--role",
        "warehouse_lead",
        "--claim",
        r#"warehouses=["W1","W2"]"#,
        "--claim",
        "sub=lead-7",
        "--ttl",
        "2h",
    ])
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap();
    let config = Config::load(Some(&path)).unwrap();
    let auth = Authenticator::from_config(&config.auth).await.unwrap();
    let p = auth.authenticate(token.trim()).await.unwrap();
    assert_eq!(&*p.role, "warehouse_lead");
    assert_eq!(p.subject.as_deref(), Some("lead-7"));
    assert_eq!(p.claim("warehouses"), Some(&json!(["W1", "W2"])));
    let left = p.expires_at.unwrap() - now();
    assert!((7140..=7200).contains(&left), "expires in {left} s");

    // `--sub` and `--jti` name the person and the token.
    let out =
        opslive(&["token", "--config", path.to_str().unwrap(), "--role", "admin", "--sub", "ada", "--jti", "t-1"])
            .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let p = auth.authenticate(String::from_utf8(out.stdout).unwrap().trim()).await.unwrap();
    assert_eq!((p.subject.as_deref(), p.claim("jti")), (Some("ada"), Some(&json!("t-1"))));
    let out =
        opslive(&["token", "--config", path.to_str().unwrap(), "--role", "admin", "--sub", "a", "--claim", "sub=b"])
            .await;
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("`sub` is given both"));

    // Without a secret it refuses, saying so.
    std::fs::write(&path, "[auth]\njwks_url = \"https://id.example/jwks.json\"\n").unwrap();
    let out = opslive(&["token", "--config", path.to_str().unwrap(), "--role", "admin"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no auth.hs256_secret is configured"), "{err}");
    assert!(out.stdout.is_empty());
}

async fn opslive(args: &[&str]) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_opslive"));
    cmd.args(args).env_remove("OPSLIVE_CONFIG").env("OPSLIVE_LOG", "warn").kill_on_drop(true);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("OPSLIVE_AUTH__")) {
        cmd.env_remove(k);
    }
    tokio::time::timeout(Duration::from_secs(60), cmd.output()).await.expect("opslive did not exit").unwrap()
}

/// The token with its payload edited and the signature kept.
fn tamper(token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    edit(&mut payload);
    format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(payload.to_string()), parts[2])
}

/// An `alg: none` token (no signature).
fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    format!("{header}.{}.", URL_SAFE_NO_PAD.encode(claims.to_string()))
}

/// `https://` issuers go through rustls with the platform's trust store: a certificate nobody
/// vouches for is refused (and the TLS stack is there at all — it has no bundled default).
#[tokio::test]
async fn an_https_issuer_with_an_untrusted_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = tokio::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .await
        .expect("openssl is installed");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = tokio::process::Command::new("openssl")
        .args(["s_server", "-www", "-accept", &format!("127.0.0.1:{port}"), "-cert"])
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // s_server prints ACCEPT once it listens.
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(server.stdout.take().unwrap()));
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("ACCEPT") {
                return;
            }
        }
        panic!("openssl s_server exited before listening");
    })
    .await
    .expect("openssl s_server listens within 20 s");

    let cfg = AuthConfig { jwks_url: Some(format!("https://127.0.0.1:{port}/jwks.json")), ..AuthConfig::default() };
    let auth = Authenticator::from_config(&cfg).await.unwrap();
    let err = auth.authenticate(&rsa_a().sign(&claims("admin"))).await.unwrap_err();
    assert_eq!(err.code(), "AUTH_UNAVAILABLE", "{err}");
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
}

/// The real server with `[auth]` from its configuration file: tokens from the issuer's JWKS
/// (RS256, ES256 with a claim the policy filters on) and from `opslive token` are served;
/// forgeries get a 401 with their code and no data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_issuer_tokens_and_refuses_forgeries() {
    use support::graphql::{fixture_policy, post};

    let (rsa, ec, stranger) = (rsa_a(), ec_a(), rsa_b());
    let issuer = Issuer::start(&[&rsa, &ec]).await;
    let pg = support::PgServer::start().await;
    let url = pg.create_database("shop").await;
    let shop = pg.connect("shop").await;
    shop.batch_execute(opslive::demo::FIXTURE_SCHEMA).await.unwrap();
    shop.batch_execute(
        "INSERT INTO warehouses VALUES ('WH-HID', 'Hidden', 'eu', 'Europe/Berlin'), ('WH-OPN', 'Open', 'eu', 'Europe/Madrid')",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "policy = {policy}\n{example}\n[auth]\nhs256_secret = \"{SECRET}\"\njwks_url = \"{jwks}\"\nissuer = \"https://id.test/\"\naudience = \"opslive\"\n",
        policy = serde_json::to_string(&fixture_policy().display().to_string()).unwrap(),
        example = opslive::demo::demo_config(&url, "127.0.0.1:0".parse().unwrap()),
        jwks = issuer.url,
    );
    let path = dir.path().join("opslive.toml");
    std::fs::write(&path, config).unwrap();
    let mut serve = support::serve::Serve::start(&path);
    let addr = serve.wait_listening().await;
    serve.wait_log("replica consistent", |_| {}).await;
    assert!(issuer.fetches() >= 1, "serve fetched the issuer's keys at start");

    let good = |role: &str, extra: Value| {
        let mut c = json!({"role": role, "exp": now() + 600, "iss": "https://id.test/", "aud": ["opslive"]});
        c.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
        c
    };
    let query = "{ warehouses(orderBy: {id: ASC}) { id } }";
    let ids = |body: &Value| -> Vec<String> {
        body["data"]["warehouses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w["id"].as_str().map(String::from))
            .collect()
    };
    // The replica is consistent when logged; the version readers see may follow a moment later.
    let admin = rsa.sign(&good("admin", json!({})));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let body = loop {
        let reply = post(addr, Some(&admin), query, json!({})).await;
        let body = reply.json();
        if reply.status == 200 && body.get("errors").is_none() && ids(&body).len() == 2 {
            break body;
        }
        assert!(std::time::Instant::now() < deadline, "admin never saw both warehouses: {}", reply.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ids(&body), ["WH-HID", "WH-OPN"]);

    // ES256, with the claim the warehouse lead's row filter refers to.
    let lead = ec.sign(&good("warehouse_lead", json!({"warehouses": ["WH-OPN"]})));
    let reply = post(addr, Some(&lead), query, json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(ids(&reply.json()), ["WH-OPN"]);

    // `opslive token` with the server's configuration: its output is accepted.
    let out = opslive(&["token", "--config", path.to_str().unwrap(), "--role", "admin", "--ttl", "5m"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let minted = String::from_utf8(out.stdout).unwrap();
    let reply = post(addr, Some(minted.trim()), query, json!({})).await;
    assert_eq!(ids(&reply.json()), ["WH-HID", "WH-OPN"], "{}", reply.text);

    let public_pem = include_bytes!("../fixtures/keys/rsa-a.pub.pem");
    let forgeries: Vec<(&str, Option<String>, &str)> = vec![
        ("no token", None, "UNAUTHENTICATED"),
        ("alg none", Some(unsigned(&good("admin", json!({})))), "INVALID_TOKEN"),
        (
            "tampered",
            Some(tamper(&rsa.sign(&good("analyst", json!({}))), |c| c["role"] = json!("admin"))),
            "INVALID_TOKEN",
        ),
        (
            "another key under a known kid",
            Some(stranger.sign_as(Algorithm::RS256, "rsa-a", &good("admin", json!({})))),
            "INVALID_TOKEN",
        ),
        ("unknown kid", Some(stranger.sign(&good("admin", json!({})))), "INVALID_TOKEN"),
        ("HS256 with the public key", Some(sign_hs256(public_pem, &good("admin", json!({})))), "INVALID_TOKEN"),
        (
            "expired",
            Some(rsa.sign(&json!({"role": "admin", "exp": now() - 1, "iss": "https://id.test/", "aud": "opslive"}))),
            "TOKEN_EXPIRED",
        ),
        (
            "wrong issuer",
            Some(rsa.sign(&json!({"role": "admin", "exp": now() + 60, "iss": "https://evil.test/", "aud": "opslive"}))),
            "INVALID_TOKEN",
        ),
        (
            "wrong audience",
            Some(rsa.sign(&json!({"role": "admin", "exp": now() + 60, "iss": "https://id.test/", "aud": "other"}))),
            "INVALID_TOKEN",
        ),
    ];
    for (what, token, code) in forgeries {
        let reply = post(addr, token.as_deref(), query, json!({})).await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.text);
        assert_eq!(reply.codes(), [code], "{what}: {}", reply.text);
        let body = reply.json();
        assert!(body.get("data").is_none_or(Value::is_null), "{what}: data in a refusal: {}", reply.text);
        assert!(!reply.text.contains("WH-"), "{what}: row values in a refusal: {}", reply.text);
        if let Some(token) = token {
            assert!(!reply.text.contains(&token), "{what}: the answer repeats the token");
        }
    }
    serve.terminate().await;
}
