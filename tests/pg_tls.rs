//! TLS to PostgreSQL, against a private server with `ssl = on` and a certificate from a CA made
//! for the test: verify-full works for both of a source's connections (SQL and replication) and
//! for the app database, and every way it should fail, fails with a message that says why.

mod support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use support::PgServer;
use support::pipeline::start;
use support::tls::{Issued, issue};
use tokio::process::Command;

/// A server with TLS on, its certificate for `localhost` only, and the CA's PEM in `dir`.
async fn tls_server(dir: &Path) -> (PgServer, Issued, String) {
    let pg = PgServer::start().await;
    let issued = issue(&["localhost"]);
    pg.enable_tls(&issued.cert.pem(), &issued.key.serialize_pem()).await;
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &issued.ca_pem).unwrap();
    (pg, issued, ca.display().to_string())
}

async fn tail(url: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_opslive"));
    cmd.args(["tail", "--url", url, "--table", "t"]).env_remove("OPSLIVE_CONFIG").env("OPSLIVE_LOG", "warn");
    cmd.kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), cmd.output()).await.expect("opslive did not exit").unwrap()
}

fn assert_refused(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected a refusal; stderr: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr should say {n:?}:\n{err}");
    }
}

/// Whether every session named like `application` is encrypted, and how many there are.
async fn encrypted_sessions(pg: &PgServer, application: &str) -> Vec<(String, String, bool)> {
    let rows = pg
        .connect("postgres")
        .await
        .query(
            "SELECT a.application_name, a.backend_type, s.ssl FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) WHERE a.application_name LIKE $1 ORDER BY 1, 2",
            &[&application],
        )
        .await
        .unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
}

/// Starts `opslive tail` on `url` and waits until its replication session is encrypted (it
/// runs until stopped; the SQL session came first, for the snapshot).
async fn streams_encrypted(pg: &PgServer, url: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_opslive"))
        .args(["tail", "--url", url, "--table", "t"])
        .env_remove("OPSLIVE_CONFIG")
        .env("OPSLIVE_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let sessions = encrypted_sessions(pg, "opslive%").await;
        if sessions.iter().any(|(_, kind, ssl)| kind == "walsender" && *ssl) {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().await.unwrap();
            panic!("tail over {url} ended ({status}): {}", String::from_utf8_lossy(&out.stderr));
        }
        assert!(tokio::time::Instant::now() < deadline, "tail over {url} never streamed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().await.unwrap();
    child.wait().await.unwrap();
}

#[tokio::test]
async fn a_source_over_verify_full_snapshots_and_streams_with_both_connections_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let (pg, _issued, ca) = tls_server(dir.path()).await;
    pg.create_database("shop").await;
    let setup = pg.connect("shop").await;
    setup.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')").await.unwrap();

    let url = format!("postgres://postgres@localhost:{}/shop?sslmode=verify-full&sslrootcert={ca}", pg.port());
    let mut running = start(&url, "tls", &["t"]);
    let id = running.table_id("t");
    running.wait_for("the snapshot", |r| r.table(id).is_some_and(|t| t.len() == 1)).await;
    setup.batch_execute("INSERT INTO t VALUES (2, 'b')").await.unwrap();
    running.wait_for("the streamed insert", |r| r.table(id).is_some_and(|t| t.len() == 2)).await;

    let sessions = encrypted_sessions(&pg, "opslive%").await;
    assert!(sessions.iter().any(|(_, kind, _)| kind == "walsender"), "no replication session among {sessions:?}");
    assert!(sessions.iter().any(|(_, kind, _)| kind == "client backend"), "no SQL session among {sessions:?}");
    assert!(sessions.iter().all(|(_, _, ssl)| *ssl), "a session is not encrypted: {sessions:?}");
    running.stop().await;
}

#[tokio::test]
async fn verify_full_refuses_a_host_the_certificate_does_not_name_and_an_unknown_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (pg, _issued, ca) = tls_server(dir.path()).await;
    pg.create_database("shop").await;
    pg.connect("shop").await.batch_execute("CREATE TABLE t (id int PRIMARY KEY)").await.unwrap();

    // The certificate names `localhost`, not the address.
    let by_address = format!("postgres://postgres@127.0.0.1:{}/shop?sslmode=verify-full&sslrootcert={ca}", pg.port());
    assert_refused(&tail(&by_address).await, &["not issued for the host name `127.0.0.1`", "verify-ca"]);
    // verify-ca checks the chain only, so the same address is accepted.
    streams_encrypted(&pg, &by_address.replace("verify-full", "verify-ca")).await;
    // require without a root certificate encrypts and takes the certificate as it comes.
    streams_encrypted(&pg, &format!("postgres://postgres@127.0.0.1:{}/shop?sslmode=require", pg.port())).await;

    // A CA that did not sign the server's certificate.
    let stranger = issue(&["localhost"]);
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, &stranger.ca_pem).unwrap();
    let unknown = format!(
        "postgres://postgres@localhost:{}/shop?sslmode=verify-full&sslrootcert={}",
        pg.port(),
        other_ca.display()
    );
    assert_refused(&tail(&unknown).await, &["not signed by a CA in the root certificate file", "other-ca.pem"]);
}

#[tokio::test]
async fn require_refuses_a_server_without_tls() {
    let pg = PgServer::start().await;
    let url = pg.create_database("shop").await;
    pg.connect("shop").await.batch_execute("CREATE TABLE t (id int PRIMARY KEY)").await.unwrap();
    assert_refused(&tail(&format!("{url}?sslmode=require")).await, &["does not support TLS"]);
}

#[tokio::test]
async fn the_app_database_opens_over_verify_full_and_refuses_an_unknown_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (pg, _issued, ca) = tls_server(dir.path()).await;
    let url =
        opslive::config::SecretUrl::parse(&format!("postgres://postgres@localhost:{}/opslive", pg.port())).unwrap();
    // The config's CA file alone asks for verify-full.
    let store = opslive::store::Store::open(&url, Some(Path::new(&ca))).await.unwrap();
    let sessions = encrypted_sessions(&pg, "opslive").await;
    assert!(!sessions.is_empty() && sessions.iter().all(|(_, _, ssl)| *ssl), "app sessions: {sessions:?}");
    drop(store);

    let stranger = issue(&["localhost"]);
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, &stranger.ca_pem).unwrap();
    let refused = opslive::store::Store::open(&url, Some(&other_ca)).await.err().expect("an unknown CA was accepted");
    // The stranger CA has the same name as the real one: its signature is what fails.
    assert!(refused.to_string().contains("invalid peer certificate"), "{refused}");

    // The URL's sslmode and sslrootcert mean what they mean to a source: require, unverified.
    let require = opslive::config::SecretUrl::parse(&format!("{}?sslmode=require", url.expose())).unwrap();
    drop(opslive::store::Store::open(&require, None).await.expect("require opens without a root certificate"));
    // One root certificate, not two that could disagree.
    let both = opslive::config::SecretUrl::parse(&format!("{}?sslrootcert={ca}", url.expose())).unwrap();
    let refused =
        opslive::store::Store::open(&both, Some(Path::new(&ca))).await.err().expect("two roots were accepted");
    assert!(refused.to_string().contains("keep one"), "{refused}");
}
