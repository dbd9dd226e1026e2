//! Bad input gets a clear message and a non-zero exit: a database not set up for CDC, a missing
//! table, an unreachable server, a malformed configuration.

mod support;

use std::process::Output;

use support::PgServer;
use tokio::process::Command;

async fn opslive(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_opslive"));
    cmd.args(args).env_remove("OPSLIVE_CONFIG").env("OPSLIVE_LOG", "warn").kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output()).await.expect("opslive did not exit").unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_fails_with(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert!(!out.status.success(), "expected failure, got success; stderr: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr should mention {n:?}:\n{err}");
    }
}

#[tokio::test]
async fn wrong_wal_level_says_what_to_change() {
    let pg = PgServer::start_with(&[("wal_level", "replica")]).await;
    let url = pg.create_database("shop").await;
    pg.connect("shop").await.batch_execute("CREATE TABLE t (id int PRIMARY KEY)").await.unwrap();
    let out = opslive(&["tail", "--url", &url, "--table", "t"], &[]).await;
    assert_fails_with(&out, &["wal_level is `replica`", "ALTER SYSTEM SET wal_level = logical"]);
}

#[tokio::test]
async fn table_problems_are_listed_together() {
    let pg = PgServer::start().await;
    let url = pg.create_database("shop").await;
    pg.connect("shop")
        .await
        .batch_execute("CREATE TABLE nokey (v int); CREATE TABLE nothing (id int PRIMARY KEY); ALTER TABLE nothing REPLICA IDENTITY NOTHING;")
        .await
        .unwrap();
    let out =
        opslive(&["tail", "--url", &url, "--table", "nokey", "--table", "missing", "--table", "nothing"], &[]).await;
    assert_fails_with(
        &out,
        &[
            "\"public\".\"nokey\" has no primary key",
            "\"public\".\"missing\" does not exist",
            "REPLICA IDENTITY NOTHING",
            "ALTER TABLE \"public\".\"nothing\" REPLICA IDENTITY DEFAULT",
        ],
    );
}

#[tokio::test]
async fn a_role_without_replication_is_told_so() {
    let pg = PgServer::start().await;
    pg.create_database("shop").await;
    pg.connect("shop")
        .await
        .batch_execute("CREATE ROLE plain LOGIN; CREATE TABLE t (id int PRIMARY KEY); GRANT SELECT ON t TO plain;")
        .await
        .unwrap();
    let url = format!("postgres://plain@127.0.0.1:{}/shop", pg.port());
    let out = opslive(&["tail", "--url", &url, "--table", "t"], &[]).await;
    assert_fails_with(&out, &["role `plain` may not start replication", "WITH REPLICATION"]);
}

#[tokio::test]
async fn unreachable_database() {
    let port = support::free_port();
    let url = format!("postgres://opslive:s3cret@127.0.0.1:{port}/shop");
    let out = opslive(&["tail", "--url", &url, "--table", "t"], &[]).await;
    assert_fails_with(&out, &["cannot connect to source `tail`", &format!("127.0.0.1:{port}")]);
    assert!(!stderr(&out).contains("s3cret"), "the password leaked: {}", stderr(&out));
}

#[tokio::test]
async fn malformed_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opslive.toml");
    let base = "[sources.shop]\nkind = \"postgres\"\nurl = \"postgres://u:pw@127.0.0.1/shop\"\n[[sources.shop.tables]]\ntable = \"orders\"\n";

    std::fs::write(&path, format!("{base}colour = \"blue\"\n")).unwrap();
    let out = opslive(&["serve", "--config", path.to_str().unwrap()], &[]).await;
    assert_fails_with(&out, &["colour", "opslive.toml"]);

    std::fs::write(&path, base.replace("kind = \"postgres\"", "kind = \"postgres\"\nslot = 7")).unwrap();
    let out = opslive(&["serve", "--config", path.to_str().unwrap()], &[]).await;
    assert_fails_with(&out, &["sources.shop.slot"]);

    std::fs::write(&path, "[sources.shop\nkind=").unwrap();
    let out = opslive(&["serve", "--config", path.to_str().unwrap()], &[]).await;
    assert_fails_with(&out, &["invalid configuration"]);

    // The environment overlay is checked the same way, and names the variable.
    std::fs::write(&path, base).unwrap();
    let out = opslive(
        &["serve", "--config", path.to_str().unwrap()],
        &[("OPSLIVE_SOURCES__SHOP__SNAPSHOT_CHUNK_ROWS", "many")],
    )
    .await;
    assert_fails_with(&out, &["sources.shop.snapshot_chunk_rows", "OPSLIVE_SOURCES__SHOP__SNAPSHOT_CHUNK_ROWS"]);

    let out = opslive(&["serve", "--config", dir.path().join("nope.toml").to_str().unwrap()], &[]).await;
    assert_fails_with(&out, &["nope.toml does not exist"]);
}

#[tokio::test]
async fn serve_stops_on_a_database_not_set_up_for_cdc() {
    let pg = PgServer::start_with(&[("wal_level", "minimal"), ("max_wal_senders", "0")]).await;
    let url = pg.create_database("shop").await;
    pg.connect("shop").await.batch_execute("CREATE TABLE orders (id int PRIMARY KEY)").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opslive.toml");
    std::fs::write(
        &path,
        format!("[sources.shop]\nkind = \"postgres\"\nurl = \"{url}\"\n[[sources.shop.tables]]\ntable = \"orders\"\n"),
    )
    .unwrap();
    let out = opslive(&["serve", "--config", path.to_str().unwrap()], &[]).await;
    assert_fails_with(&out, &["wal_level is `minimal`"]);
}
