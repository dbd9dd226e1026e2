//! The browser app's side of the server: the built app (`web_dir`) as static files, how to
//! sign in (`GET /auth/config`), and the development sign-in (`POST /auth/dev-login`).
//!
//! The app is a static export, so serving it is a file server with the export's `404.html` for
//! unknown paths; the API's routes are matched first. Development sign-in mints an HS256 token
//! for one of the configured `dev_users`: it exists only when `auth.dev_login` is on, the
//! secret is HS256 and the server listens on loopback (checked at start by [`check`]), so a
//! deployment cannot expose it by accident.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tower_http::services::{ServeDir, ServeFile};

use crate::auth::AuthConfigError;
use crate::config::{AuthConfig, DevUser, OidcClient};

/// How long a development token stays valid (a working day, like the demo's printed tokens).
pub const DEV_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

/// What the sign-in routes need: the `[auth]` section as configured.
#[derive(Clone, Debug)]
pub struct SignIn {
    auth: Arc<AuthConfig>,
}

/// The answer of `GET /auth/config`: what the sign-in page offers.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SignInOptions<'a> {
    dev_login: bool,
    users: &'a [DevUser],
    oidc: Option<&'a OidcClient>,
}

#[derive(Deserialize)]
struct DevLoginRequest {
    sub: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DevLoginAnswer {
    token: String,
    expires_at: String,
}

/// Refuses a development sign-in that would be reachable from elsewhere or could not sign.
pub fn check(auth: &AuthConfig, listen: SocketAddr) -> Result<(), AuthConfigError> {
    if !auth.dev_login {
        return Ok(());
    }
    let refuse = |message: &str| Err(AuthConfigError::Key { key: "dev_login", message: message.into() });
    if auth.hs256_secret.is_none() {
        return refuse("development sign-in signs HS256 tokens: set `auth.hs256_secret` or turn it off");
    }
    if !listen.ip().is_loopback() {
        return refuse(&format!(
            "development sign-in hands out tokens to anyone who asks, so it is only served on a loopback address (`listen` is {listen})"
        ));
    }
    if auth.dev_users.is_empty() {
        return refuse("there is nobody to sign in as: add `[[auth.dev_users]]` entries (sub, role, claims)");
    }
    Ok(())
}

/// `/auth/config` and `/auth/dev-login`.
pub fn sign_in_router(auth: AuthConfig) -> Router {
    Router::new()
        .route("/auth/config", get(options))
        .route("/auth/dev-login", post(dev_login))
        .with_state(SignIn { auth: Arc::new(auth) })
}

/// The built app under `/`, unknown paths answered by its `404.html` (with status 404).
pub fn app_router(dir: &Path) -> Router {
    let not_found = ServeFile::new(dir.join("404.html"));
    Router::new().fallback_service(ServeDir::new(dir).not_found_service(not_found))
}

/// Whether `dir` holds a built app: an `index.html` at its root.
pub fn is_built(dir: &Path) -> bool {
    dir.join("index.html").is_file()
}

/// The configured `web_dir`, refused when it holds no built app (a clear message at start
/// rather than 404s in the browser).
pub fn checked_dir(dir: &Path) -> Result<PathBuf, super::ApiError> {
    if is_built(dir) { Ok(dir.to_path_buf()) } else { Err(super::ApiError::WebDir(dir.to_path_buf())) }
}

async fn options(State(state): State<SignIn>) -> Response {
    let auth = &state.auth;
    let users: &[DevUser] = if auth.dev_login { &auth.dev_users } else { &[] };
    Json(SignInOptions { dev_login: auth.dev_login, users, oidc: auth.oidc.as_ref() }).into_response()
}

async fn dev_login(State(state): State<SignIn>, body: axum::body::Bytes) -> Response {
    let auth = &state.auth;
    if !auth.dev_login {
        return (StatusCode::NOT_FOUND, "development sign-in is off").into_response();
    }
    let Ok(request) = serde_json::from_slice::<DevLoginRequest>(&body) else {
        return (StatusCode::BAD_REQUEST, "expected JSON {\"sub\": \"…\"}").into_response();
    };
    let Some(user) = auth.dev_users.iter().find(|u| u.sub == request.sub) else {
        return (StatusCode::NOT_FOUND, "no such development user").into_response();
    };
    let mut claims = user.claims.clone();
    claims.insert("sub".into(), user.sub.clone().into());
    match crate::auth::mint_for(auth, &user.role, claims, DEV_TOKEN_TTL) {
        Ok(token) => {
            let expires = chrono::Utc::now() + DEV_TOKEN_TTL;
            Json(DevLoginAnswer { token, expires_at: expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true) })
                .into_response()
        }
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}
