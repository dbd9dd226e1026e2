//! Who may query the demo: the fixture policy, a development HS256 secret made for this run,
//! and one token per fixture role, printed so GraphiQL can be used at once.
//!
//! The policy and the full configuration are written next to the demo database, so the policy
//! can be edited while the demo runs (it reloads live) and `opslive token --config …` mints
//! more tokens with the same secret.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value as Json, json};

use crate::auth::{AuthError, mint_hs256};

/// The fixture policy, built into the binary so the demo runs from any directory.
pub const FIXTURE_POLICY: &str = include_str!("../../fixtures/policy.toml");

/// How long the printed tokens stay valid.
pub const TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

/// The demo's fixture roles, each a person (`sub`) with the claims their policy rules read.
pub fn roles() -> Vec<(&'static str, Map<String, Json>)> {
    let claims = |v: Json| v.as_object().cloned().unwrap_or_default();
    vec![
        ("admin", claims(json!({ "sub": "ada@demo.opslive" }))),
        ("ops_manager", claims(json!({ "sub": "omar@demo.opslive" }))),
        ("warehouse_lead", claims(json!({ "sub": "wanda@demo.opslive", "warehouses": ["WH-BER", "WH-MAD"] }))),
        ("support_lead", claims(json!({ "sub": "sam@demo.opslive" }))),
        ("finance", claims(json!({ "sub": "fiona@demo.opslive" }))),
        ("analyst", claims(json!({ "sub": "ana@demo.opslive" }))),
    ]
}

/// The files the demo's server reads, under the demo's data directory.
pub struct AccessFiles {
    pub policy: PathBuf,
    pub config: PathBuf,
    pub secret: String,
}

/// A fresh secret for this run: 32 random bytes, hex.
fn new_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Writes the fixture policy and the demo's whole configuration (`config_text` plus the policy
/// path and the secret) into `dir`; returns what was written.
pub fn write(dir: &Path, config_text: &str) -> std::io::Result<(AccessFiles, String)> {
    std::fs::create_dir_all(dir)?;
    let dir = std::path::absolute(dir)?;
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, FIXTURE_POLICY)?;
    let secret = new_secret();
    let quoted = serde_json::to_string(&policy.display().to_string()).unwrap_or_default();
    // Top-level keys go before the first table of the example.
    let text = format!("policy = {quoted}\n{config_text}\n{}", auth_toml(&secret));
    let config = dir.join("opslive.toml");
    std::fs::write(&config, &text)?;
    Ok((AccessFiles { policy, config, secret }, text))
}

/// `[auth]`: the secret, `dev_login = true` and one `[[auth.dev_users]]` per demo role (the
/// dashboard's sign-in page offers them; the demo listens on loopback, where that is allowed).
fn auth_toml(secret: &str) -> String {
    let users: Vec<toml::Value> = roles()
        .into_iter()
        .map(|(role, mut claims)| {
            let sub = claims.remove("sub").and_then(|s| s.as_str().map(str::to_string)).unwrap_or_default();
            let user = crate::config::DevUser { sub, role: role.into(), claims };
            toml::Value::try_from(user).expect("a demo user is TOML")
        })
        .collect();
    let mut auth = toml::Table::new();
    auth.insert("hs256_secret".into(), toml::Value::String(secret.into()));
    auth.insert("dev_login".into(), toml::Value::Boolean(true));
    auth.insert("dev_users".into(), toml::Value::Array(users));
    let mut top = toml::Table::new();
    top.insert("auth".into(), toml::Value::Table(auth));
    toml::to_string(&top).expect("the demo's [auth] is TOML")
}

/// The banner's GraphQL section: where the endpoint is, one ready-to-paste header per role.
pub fn banner(files: &AccessFiles, listen: SocketAddr, exe: &str) -> Result<String, AuthError> {
    let mut out = format!(
        "\n  graphql    http://{listen}/graphql   (GraphiQL: the dashboard's Explorer; other clients: a header below)\
         \n  policy     {}   (edit it: changes apply live)\
         \n\n  tokens, valid {} h; more with `{exe} token --config {} --role analyst`:\n",
        files.policy.display(),
        TOKEN_TTL.as_secs() / 3600,
        files.config.display(),
    );
    for (role, claims) in roles() {
        let token = mint_hs256(&files.secret, role, claims, TOKEN_TTL)?;
        out.push_str(&format!("    {role:<15} {{\"Authorization\": \"Bearer {token}\"}}\n"));
    }
    out.push_str(&format!(
        "\n  or with curl:\n    curl -s http://{listen}/graphql -H 'Content-Type: application/json' \
         -H 'Authorization: Bearer <token>' -d '{{\"query\": \"{{ ordersAggregate {{ count }} }}\"}}'\n"
    ));
    Ok(out.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::policy::Policy;

    #[test]
    fn every_policy_role_gets_a_token_and_the_config_loads() {
        let dir = tempfile::tempdir().unwrap();
        let example =
            crate::demo::demo_config("postgres://postgres@127.0.0.1:5432/shop", "127.0.0.1:0".parse().unwrap());
        let (files, text) = write(dir.path(), &example).unwrap();
        let config = Config::from_toml(&text).unwrap();
        assert_eq!(config.policy.as_deref(), Some(files.policy.as_path()));
        let policy = Policy::load(&files.policy, &config.registry().unwrap()).unwrap();
        let mut in_policy: Vec<&str> = policy.roles().collect();
        let mut printed: Vec<&str> = roles().into_iter().map(|(r, _)| r).collect();
        in_policy.sort();
        printed.sort();
        assert_eq!(in_policy, printed);
        let text = banner(&files, "127.0.0.1:8080".parse().unwrap(), "opslive").unwrap();
        assert_eq!(text.matches("{\"Authorization\": \"Bearer ").count(), 6, "{text}");
        assert!(!text.contains(&files.secret), "the secret itself is not printed");
    }
}
