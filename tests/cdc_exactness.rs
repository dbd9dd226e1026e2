//! Exactness: concurrent random writes run while the snapshot is taken and after; once caught
//! up, the replica equals the source row for row and the stream had no anomaly.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use opslive::change::Key;
use opslive::value::Value;
use rand::Rng;
use support::PgServer;
use support::pipeline::{assert_same, assert_same_spelling, source_rows, start, start_with_binary};

const SCHEMA: &str = "
CREATE TABLE items (
    id bigint PRIMARY KEY,
    grp int NOT NULL,
    qty int,
    price numeric(14,4),
    ratio double precision,
    note text,
    big text,
    tags text[],
    doc jsonb,
    at timestamptz,
    day date,
    span interval,
    token uuid,
    raw bytea
);
-- Out of line and uncompressed: an update that leaves `big` alone sends it as unchanged TOAST.
ALTER TABLE items ALTER COLUMN big SET STORAGE EXTERNAL;
CREATE TABLE ledger (id bigint PRIMARY KEY, account text NOT NULL, amount numeric, memo text);
ALTER TABLE ledger REPLICA IDENTITY FULL;
CREATE TABLE pairs (a int, b text, v int, PRIMARY KEY (a, b));
CREATE TABLE unwatched (id serial PRIMARY KEY, v text);
-- Rows identified by another unique index than the primary key.
CREATE TABLE coded (id int PRIMARY KEY, code text NOT NULL, v int);
CREATE UNIQUE INDEX coded_code ON coded (code);
ALTER TABLE coded REPLICA IDENTITY USING INDEX coded_code;
";

fn big_text(rng: &mut impl Rng) -> String {
    // Random hex does not compress below the TOAST threshold.
    (0..80).map(|_| format!("{:032x}", rng.random::<u128>())).collect()
}

async fn seed(client: &tokio_postgres::Client) {
    client.batch_execute(SCHEMA).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO items (id, grp, qty, price, ratio, note, big, tags, doc, at, day, span, token, raw)
             SELECT g, g % 10, g, (g * 1.25)::numeric, g / 7.0, 'note ' || g,
                    CASE WHEN g % 3 = 0 THEN (SELECT string_agg(md5(g::text || s::text), '') FROM generate_series(1, 80) s) END,
                    ARRAY['t' || g, 'x,y', NULL], jsonb_build_object('g', g, 'nested', jsonb_build_array(1, 2.5)),
                    now() - g * interval '1 minute', current_date - g, g * interval '1 hour 1 second', gen_random_uuid(),
                    decode(md5(g::text), 'hex')
             FROM generate_series(1, 3000) g;
             INSERT INTO ledger SELECT g, 'acct' || (g % 7), g * 0.01, NULL FROM generate_series(1, 300) g;
             INSERT INTO pairs SELECT g % 50, 'k' || (g / 50), g FROM generate_series(1, 500) g;
             INSERT INTO coded SELECT g, 'c' || g, g FROM generate_series(1, 200) g;",
        )
        .await
        .unwrap();
}

/// One random transaction of 1–6 statements; about one in ten rolls back.
async fn random_tx(
    client: &mut tokio_postgres::Client,
    rng: &mut rand::rngs::StdRng,
    writer: u64,
) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    for _ in 0..rng.random_range(1..=6) {
        let id: i64 = rng.random_range(1..6000);
        match rng.random_range(0..100) {
            0..=24 => {
                tx.execute(
                    "INSERT INTO items (id, grp, qty, price, ratio, note, big, at, span, tags) VALUES ($1, $2, $3, $4::text::numeric, 'NaN', $5, $6, now(), '-1 day 2 hours', '{}')
                     ON CONFLICT (id) DO NOTHING",
                    &[&id, &(id as i32 % 10), &(writer as i32), &format!("{}.{:04}", id, writer), &format!("w{writer}"), &big_text(rng)],
                )
                .await?;
            }
            25..=49 => {
                // Leaves `big` unchanged: it arrives as an unchanged TOAST value.
                tx.execute(
                    "UPDATE items SET qty = qty + 1, note = $2, at = now() WHERE id = $1",
                    &[&id, &format!("u{writer}")],
                )
                .await?;
            }
            50..=54 => {
                tx.execute("UPDATE items SET big = $2 WHERE id = $1", &[&id, &big_text(rng)]).await?;
            }
            55..=62 => {
                tx.execute("DELETE FROM items WHERE id = $1", &[&id]).await?;
            }
            63..=67 => {
                // Primary-key update.
                let to: i64 = rng.random_range(6000..12000);
                tx.execute(
                    "UPDATE items SET id = $2 WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM items WHERE id = $2)",
                    &[&id, &to],
                )
                .await?;
            }
            68..=71 => {
                tx.execute(
                    "UPDATE items SET price = price * 2, ratio = 'Infinity' WHERE grp = $1 AND id % 17 = $2",
                    &[&(id as i32 % 10), &(writer as i64 % 17)],
                )
                .await?;
            }
            72..=81 => {
                let lid: i64 = rng.random_range(1..400);
                tx.execute(
                    "INSERT INTO ledger VALUES ($1, $2, $3::text::numeric, 'm') ON CONFLICT (id) DO UPDATE SET amount = ledger.amount + 1, memo = EXCLUDED.memo",
                    &[&lid, &format!("acct{}", lid % 7), &format!("{}.5", lid)],
                )
                .await?;
            }
            82..=85 => {
                let lid: i64 = rng.random_range(1..400);
                tx.execute("DELETE FROM ledger WHERE id = $1", &[&lid]).await?;
            }
            86..=93 => {
                let a = rng.random_range(0..60);
                tx.execute("UPDATE pairs SET v = v + 1, b = b || '' WHERE a = $1", &[&a]).await?;
                tx.execute(
                    "INSERT INTO pairs VALUES ($1, $2, 0) ON CONFLICT DO NOTHING",
                    &[&a, &format!("n{}", rng.random::<u16>())],
                )
                .await?;
            }
            94..=96 => {
                // Moves a row's identity (the replica identity index), or deletes it.
                let c = rng.random_range(1..250);
                let to = rng.random_range(1..100_000);
                tx.execute("UPDATE coded SET code = 'c' || $2::int, v = v + 1 WHERE code = 'c' || $1::int AND NOT EXISTS (SELECT 1 FROM coded WHERE code = 'c' || $2::int)", &[&c, &to]).await?;
                tx.execute("DELETE FROM coded WHERE id = $1", &[&(c + 7)]).await?;
            }
            _ => {
                tx.execute("INSERT INTO unwatched (v) VALUES ('noise')", &[]).await?;
            }
        }
    }
    if rng.random_range(0..10) == 0 { tx.rollback().await } else { tx.commit().await }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replica_equals_source_after_concurrent_writes_during_snapshot() {
    concurrent_writes_during_snapshot(false).await;
}

/// The same with binary tuples: every type of these tables is read from its binary form.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replica_equals_source_after_concurrent_writes_during_snapshot_binary() {
    concurrent_writes_during_snapshot(true).await;
}

async fn concurrent_writes_during_snapshot(binary: bool) {
    let pg = PgServer::start().await;
    let url = pg.create_database("shop").await;
    let setup = pg.connect("shop").await;
    seed(&setup).await;

    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let (stop, committed) = (stop.clone(), committed.clone());
        let mut client = pg.connect("shop").await;
        writers.push(tokio::spawn(async move {
            use rand::SeedableRng;
            let mut rng = rand::rngs::StdRng::seed_from_u64(w);
            while !stop.load(Ordering::Relaxed) {
                // Deadlocks and unique violations between writers are expected; a failed
                // transaction commits nothing. A closed connection means the test is ending.
                match random_tx(&mut client, &mut rng, w).await {
                    Ok(()) => {
                        committed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) if e.is_closed() => break,
                    Err(_) => {}
                }
            }
        }));
    }
    // Truncates of the FULL-identity table, also during the snapshot.
    let truncator = {
        let stop = stop.clone();
        let client = pg.connect("shop").await;
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let refill = "BEGIN; TRUNCATE ledger; INSERT INTO ledger SELECT g, 'acct' || (g % 7), g * 0.01, 'refill' FROM generate_series(1, 200) g; COMMIT;";
                if client.batch_execute(refill).await.is_err() {
                    break;
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            n
        })
    };

    // Writers are running: take the snapshot under them.
    while committed.load(Ordering::Relaxed) < 50 {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut running = start_with_binary(&url, "exact", &["items", "ledger", "pairs", "coded"], binary);
    running.wait_for("the snapshot", |r| r.applied_position("src").0 > 0).await;
    assert_eq!(running.stats.binary_tuples.load(Ordering::Relaxed), binary, "the tuples' form");
    let at_snapshot = committed.load(Ordering::Relaxed);
    // Keep writing after the snapshot until plenty of streamed transactions were applied.
    let streamed = {
        let seen = running.seen.clone();
        move || seen.lock().unwrap().positions.len()
    };
    while streamed() < 400 {
        if running.versions.changed().await.is_err() {
            // The apply loop ends only when the source does: say why it did.
            panic!("the source stopped: {:?}", (&mut running.source).await);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let truncates = truncator.await.unwrap();

    // Markers committed after every writer stopped: once they are applied, so is everything
    // else (the ledger may be copied again on its own after a TRUNCATE raced its snapshot: its
    // marker arrives once it is back).
    setup
        .batch_execute("INSERT INTO items (id, grp) VALUES (-1, 0); INSERT INTO ledger VALUES (-1, 'marker', 0, NULL)")
        .await
        .unwrap();
    let marker = Key(vec![Value::Int8(-1)].into());
    let (items, ledger) = (running.table_id("items"), running.table_id("ledger"));
    let replica = running
        .wait_for("the marker rows", |r| {
            [items, ledger]
                .iter()
                .all(|id| r.table(*id).is_some_and(|t| t.state.is_ready() && t.get(&marker).is_some()))
        })
        .await;

    for table in ["items", "ledger", "pairs", "coded"] {
        let id = running.table_id(table);
        let expected = source_rows(&setup, &replica, id).await;
        assert!(!expected.is_empty());
        assert_same(&replica, id, &expected);
        assert_same_spelling(&replica, id, &expected);
    }
    {
        let seen = running.seen.lock().unwrap();
        assert!(
            seen.anomalies.is_empty(),
            "the stream contradicted the replica: {:?}",
            &seen.anomalies[..seen.anomalies.len().min(10)]
        );
        for (table, positions) in &seen.by_table {
            assert!(
                positions.windows(2).all(|w| w[0] < w[1]),
                "table {table:?}: transactions applied out of commit order"
            );
        }
        assert!(
            seen.positions.first().unwrap() > &seen.consistent_at.unwrap(),
            "a streamed transaction at or before the snapshot"
        );
        assert_eq!(seen.skipped, 0);
        eprintln!(
            "committed {} transactions ({} before the snapshot), {} truncates; applied {} streamed transactions",
            committed.load(Ordering::Relaxed),
            at_snapshot,
            truncates,
            seen.positions.len()
        );
    }
    // The TOAST path was exercised: some rows hold big values that were never re-sent.
    let t = replica.table(items).unwrap();
    let big = t.schema.column_index("big").unwrap();
    assert!(t.rows().filter(|(_, r)| matches!(&r[big], Value::Text(s) if s.len() > 2000)).count() > 100);
    running.stop().await;
}

/// The TRUNCATE guard: a TRUNCATE that commits after the slot exported its snapshot but before
/// the table is read makes the table read as empty in that snapshot, while the stream carries
/// changes of rows the replica never saw. The table must be copied again (on its own, while the
/// rest streams).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncate_between_slot_and_read_retakes_the_snapshot() {
    let pg = PgServer::start().await;
    let url = pg.create_database("shop").await;
    let setup = pg.connect("shop").await;
    setup.batch_execute(SCHEMA).await.unwrap();
    setup.batch_execute("INSERT INTO ledger SELECT g, 'a', g, 'old' FROM generate_series(1, 100) g").await.unwrap();

    // Rewrites the table, with an update of a row just before, until a snapshot was retaken.
    let truncator = pg.connect("shop").await;
    let rewrite = "BEGIN; UPDATE ledger SET memo = 'touched' WHERE id = 1; TRUNCATE ledger;
                   INSERT INTO ledger SELECT g, 'b', g, 'new' FROM generate_series(1, 100) g; COMMIT";
    // The race is not forced, so a snapshot may finish between two rewrites; then the pipeline
    // is started again, until one snapshot had to be retaken.
    let mut attempt = 0;
    let mut running = loop {
        attempt += 1;
        assert!(attempt <= 30, "no TRUNCATE landed between slot and read in {attempt} snapshots");
        let running = start(&url, "guard", &["ledger"]);
        while running.stats.snapshot_retries.load(Ordering::Relaxed) == 0 && !running.source.is_finished() {
            if running.seen.lock().unwrap().consistent_at.is_some() {
                break;
            }
            truncator.batch_execute(rewrite).await.unwrap();
        }
        if running.stats.snapshot_retries.load(Ordering::Relaxed) > 0 {
            break running;
        }
        assert!(!running.source.is_finished(), "source ended");
        running.stop().await;
    };
    setup.batch_execute("INSERT INTO ledger VALUES (-1, 'marker', 0, NULL)").await.unwrap();
    let id = running.table_id("ledger");
    let marker = Key(vec![Value::Int8(-1)].into());
    let replica = running.wait_for("the marker", |r| r.table(id).is_some_and(|t| t.get(&marker).is_some())).await;
    let expected = source_rows(&setup, &replica, id).await;
    assert_same(&replica, id, &expected);
    let seen = running.seen.lock().unwrap().anomalies.clone();
    assert!(seen.is_empty(), "the guard let a rewritten table through: {seen:?}");
    running.stop().await;
}
