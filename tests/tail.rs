//! `opslive tail` on a database being written to prints every committed change once, in commit
//! order: replaying its lines over its snapshot rows rebuilds the table exactly.

mod support;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value as Json;
use support::PgServer;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// Starts `opslive tail` on one table, with its stdout as lines.
fn spawn_tail(url: &str, table: &str) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_opslive"))
        .args(["tail", "--url", url, "--table", table])
        .env("OPSLIVE_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tail_prints_every_committed_change_once_in_commit_order() {
    let pg = PgServer::start().await;
    let url = pg.create_database("shop").await;
    let setup = pg.connect("shop").await;
    setup
        .batch_execute(
            "CREATE TABLE events (id bigint PRIMARY KEY, writer int NOT NULL, seq int NOT NULL, payload text);
             INSERT INTO events SELECT g, 0, g, 'seed' FROM generate_series(1, 2000) g;",
        )
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 1..=3i32 {
        let stop = stop.clone();
        let mut client = pg.connect("shop").await;
        writers.push(tokio::spawn(async move {
            let mut seq = 0i32;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let id = i64::from(w) * 1_000_000 + i64::from(seq);
                let tx = client.transaction().await.unwrap();
                tx.execute("INSERT INTO events VALUES ($1, $2, $3, 'new')", &[&id, &w, &seq]).await.unwrap();
                tx.execute(
                    "UPDATE events SET payload = 'touched by ' || $2 WHERE id = $1",
                    &[&(i64::from(seq % 2000) + 1), &w.to_string()],
                )
                .await
                .unwrap();
                if seq % 5 == 0 {
                    tx.execute("DELETE FROM events WHERE id = $1", &[&(id - 2)]).await.unwrap();
                }
                if seq % 11 == 0 { tx.rollback().await.unwrap() } else { tx.commit().await.unwrap() }
            }
        }));
    }

    let (mut child, mut lines) = spawn_tail(&url, "events");
    let mut parsed: Vec<Json> = Vec::new();
    let mut streamed = 0;
    let mut marker_sent = false;
    loop {
        let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
            .await
            .expect("tail went quiet")
            .unwrap()
            .expect("tail exited early");
        let v: Json = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["op"] != "snapshot" {
            streamed += 1;
        }
        let is_marker = v["key"]["id"] == "-1";
        parsed.push(v);
        if is_marker {
            break;
        }
        if streamed >= 300 && !marker_sent {
            stop.store(true, Ordering::Relaxed);
            for w in writers.drain(..) {
                w.await.unwrap();
            }
            setup.batch_execute("INSERT INTO events VALUES (-1, 0, 0, 'marker')").await.unwrap();
            marker_sent = true;
        }
    }
    child.kill().await.unwrap();

    // Replay: snapshot rows first, then changes; a key never appears twice, a change never
    // targets a missing row, and positions never go back.
    let mut model: BTreeMap<String, Json> = BTreeMap::new();
    let mut last = (0u64, 0u64);
    let mut snapshot_rows = 0;
    for v in &parsed {
        let key = v["key"]["id"].as_str().unwrap().to_string();
        match v["op"].as_str().unwrap() {
            "snapshot" => {
                snapshot_rows += 1;
                assert!(model.insert(key, v["after"].clone()).is_none(), "snapshot row twice: {v}");
                continue;
            }
            "insert" => assert!(model.insert(key, v["after"].clone()).is_none(), "insert of an existing key: {v}"),
            "update" => {
                let old = model.insert(key, v["after"].clone());
                assert_eq!(old.as_ref(), Some(&v["before"]), "update's before is not the row tail had: {v}");
            }
            "delete" => {
                assert_eq!(model.remove(&key).as_ref(), Some(&v["before"]), "delete of a row tail did not have: {v}")
            }
            other => panic!("unexpected op {other}: {v}"),
        }
        let (hi, lo) = v["position"].as_str().unwrap().split_once('/').unwrap();
        let pos = (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap();
        let at = (pos, v["ordinal"].as_u64().unwrap());
        assert!(at > last, "out of commit order: {v}");
        last = at;
        assert!(v["commit_ts"].as_str().unwrap().ends_with('Z'));
        assert!(v["tx"].as_u64().is_some());
    }
    assert!(snapshot_rows >= 2000);

    let rows = setup.query("SELECT id::text, writer, seq, payload FROM events", &[]).await.unwrap();
    assert_eq!(model.len(), rows.len(), "tail's replay and the table differ in size");
    for r in rows {
        let id: String = r.get(0);
        let got = model.get(&id).unwrap_or_else(|| panic!("row {id} missing from tail's replay"));
        assert_eq!(got["writer"], r.get::<_, i32>(1));
        assert_eq!(got["seq"], r.get::<_, i32>(2));
        assert_eq!(got["payload"].as_str(), r.get::<_, Option<&str>>(3));
        assert_eq!(got["id"], Json::String(id.clone()), "int8 prints as a string");
    }
}

/// Values print exactly as the source holds them: JSON numbers keep their digits, float4 does
/// not grow digits, int8 and numeric are strings.
#[tokio::test]
async fn tail_keeps_exact_values() {
    let pg = PgServer::start().await;
    let url = pg.create_database("shop").await;
    pg.connect("shop")
        .await
        .batch_execute(
            r#"CREATE TABLE v (id bigint PRIMARY KEY, doc jsonb, r real, n numeric);
               INSERT INTO v VALUES (9007199254740993, '{"b": [true, 1.000000000000000001], "big": 12345678901234567890.5}', 1.1, 0.10);"#,
        )
        .await
        .unwrap();
    let (mut child, mut lines) = spawn_tail(&url, "v");
    let line =
        tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line()).await.unwrap().unwrap().unwrap();
    child.kill().await.unwrap();
    assert!(line.contains(r#""doc":{"b": [true, 1.000000000000000001], "big": 12345678901234567890.5}"#), "{line}");
    assert!(line.contains(r#""r":1.1,"#), "{line}");
    assert!(line.contains(r#""id":"9007199254740993""#), "{line}");
    assert!(line.contains(r#""n":"0.10""#), "{line}");
}
