//! A transaction far larger than the memory kept for transactions (`[transactions]
//! buffer_bytes`), through `opslive serve` on a PostgreSQL whose own decoding spills it
//! (`logical_decoding_work_mem = 64kB`): opslive holds no more than the budget of it at any
//! time, readers never see part of it, subscribers get one message for it (a change stream is
//! told to read the table again, a KPI is read afresh), and the replica is exact after it; an
//! aborted one leaves no trace.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value as Json, json};
use support::PgServer;
use support::graphql::{Shop, data, fixture_policy, token};
use support::http::metric;
use support::ws::{TRANSPORT_WS, WsClient};

const BUDGET: usize = 4 * 1024 * 1024;
const ROWS: usize = 500_000;

const DATA: &str = "
    INSERT INTO warehouses VALUES ('WH-BER', 'Berlin', 'eu', 'Europe/Berlin');
    INSERT INTO customers (name, email, phone, region) VALUES ('Ada', 'ada@example.com', NULL, 'eu');
    INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count, notes, created_at)
      SELECT 'web', 1, 'pending', g * 1.25, 'EUR', 'WH-BER', 'eu', g, 'note ' || g, '2026-01-01'::timestamptz + g * interval '1 minute'
      FROM generate_series(1, 30) g;
";

fn seq(payload: &Json) -> u64 {
    payload["extensions"]["seq"].as_u64().unwrap_or_else(|| panic!("no seq in {payload}"))
}

/// `opslive serve` with a 4 MiB budget on a server whose decoding spills past 64 kB.
async fn start() -> (Shop, tokio_postgres::Client, String) {
    let pg = PgServer::start_with(&[("logical_decoding_work_mem", "64kB")]).await;
    pg.create_database("shop").await;
    let db = pg.connect("shop").await;
    db.batch_execute(opslive::demo::FIXTURE_SCHEMA).await.unwrap();
    db.batch_execute(DATA).await.unwrap();
    let top = format!("transactions = {{ buffer_bytes = {BUDGET} }}");
    let mut shop = Shop::serve_on(pg, &fixture_policy(), &top, "").await;
    shop.wait_ready().await;
    assert_eq!(
        metric(shop.addr, "opslive_transaction_buffer_bytes", &[("which", "limit")]).await,
        Some(BUDGET as f64),
        "the configured budget is the one in force"
    );
    (shop, db, token("admin", json!({})))
}

fn insert(rows: usize) -> String {
    format!(
        "INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count, notes, created_at)
         SELECT 'web', 1, 'pending', g * 0.5, 'EUR', 'WH-BER', 'eu', g, 'bulk ' || g, '2026-02-01'::timestamptz + g * interval '1 second'
         FROM generate_series(1, {rows}) g;"
    )
}

/// `rows` inserts, one update of a row subscribers show, then the inserted rows deleted again.
fn large(rows: usize) -> String {
    format!(
        "BEGIN; {} UPDATE orders SET status = 'shipped' WHERE id = 2; DELETE FROM orders WHERE notes LIKE 'bulk %'; COMMIT;",
        insert(rows)
    )
}

/// The replica holds what the table holds.
async fn assert_exact(shop: &Shop, db: &tokio_postgres::Client, admin: &str) {
    let rows = db.query("SELECT id, status FROM orders ORDER BY id DESC", &[]).await.unwrap();
    let expected: Vec<Json> =
        rows.iter().map(|r| json!({"id": r.get::<_, i64>(0).to_string(), "status": r.get::<_, String>(1)})).collect();
    let all = data(shop.addr, admin, "{ orders(orderBy: {id: DESC}) { id status } }", json!({})).await;
    assert_eq!(all["orders"], Json::Array(expected));
    assert!(all["orders"].as_array().unwrap().iter().any(|r| r["id"] == "2" && r["status"] == "shipped"));
    let anomalies = metric(shop.addr, "opslive_replica_anomalies_total", &[]).await.unwrap();
    assert_eq!(anomalies, 0.0, "no change contradicted the replica");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_larger_than_the_budget_streams_through_bounded_and_shows_whole() {
    let (shop, db, admin) = start().await;
    let list = "subscription { orders(orderBy: {id: DESC}, limit: 5) { id status } }";
    let groups = "subscription { ordersAggregate(groupBy: [STATUS]) { key { status } count } }";
    let mut ws = WsClient::connect(shop.addr, TRANSPORT_WS, &admin).await;
    let mut seqs = Vec::new();
    for (id, doc) in [("list", list), ("groups", groups)] {
        ws.subscribe(id, doc, json!({})).await;
        seqs.push(seq(&ws.next(id).await));
    }
    // A change stream cannot follow a transaction whose row changes were let go: it is told to
    // read the table again.
    ws.subscribe("changes", "subscription { ordersChanges { cursor events { kind } } }", json!({})).await;
    ws.next("changes").await;
    // A KPI on the table, kept by the KPI engine from the same batches.
    let kpi = json!({ "name": "Orders by status", "table": "orders", "aggregate": "COUNT", "groupBy": ["status"] });
    let create = "mutation($input: KpiInput!) { createKpi(input: $input) { id } }";
    data(shop.addr, &admin, create, json!({ "input": kpi })).await;

    // Readers poll the count while the transactions stream through: any version that showed
    // part of one would count its inserted rows.
    let reading = tokio_util::sync::CancellationToken::new();
    let reader = tokio::spawn({
        let (addr, admin, reading) = (shop.addr, admin.clone(), reading.clone());
        async move {
            let mut counts = Vec::new();
            while !reading.is_cancelled() {
                let d = data(addr, &admin, "{ ordersAggregate { count } }", json!({})).await;
                counts.push(d["ordersAggregate"][0]["count"].as_u64().expect("a count"));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            counts
        }
    });

    // Aborted: the server never decodes it for opslive, so nothing reaches anyone.
    db.batch_execute(&format!("BEGIN; {} ROLLBACK;", insert(ROWS))).await.unwrap();
    db.batch_execute(&large(ROWS)).await.unwrap();
    let end: String = db.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.unwrap().get(0);
    let end = opslive::change::Position::parse(&end).unwrap();

    // One message per subscription, the transaction's end state, and nothing from the aborted
    // one before it.
    let mut told = false;
    for _ in 0..3 {
        let message = tokio::time::timeout(Duration::from_secs(300), ws.message())
            .await
            .expect("the transaction reaches subscribers")
            .expect("an update");
        let id = message["id"].as_str().unwrap_or_default();
        if id == "changes" {
            assert_eq!(message["type"], "error", "{message}");
            let text = message["payload"][0]["message"].as_str().unwrap_or_default();
            assert!(text.contains("too large to pass on row by row") && text.contains("read it again"), "{message}");
            told = !told;
            continue;
        }
        let i = ["list", "groups"].iter().position(|s| *s == id).unwrap_or_else(|| panic!("unexpected {message}"));
        let payload = &message["payload"];
        assert_eq!(seq(payload), seqs[i] + 1, "one message for the transaction: {payload}");
        seqs[i] += 1;
        let query = [list, groups][i].replacen("subscription", "query", 1);
        assert_eq!(payload["data"], data(shop.addr, &admin, &query, json!({})).await, "{id} equals a fresh query");
    }
    assert!(told, "the change stream was told once");
    support::http::applied_up_to(shop.addr, "shop", end).await;
    reading.cancel();
    let counts = reader.await.unwrap();
    assert!(counts.len() > 5, "the reader polled while the transaction streamed: {counts:?}");
    assert!(counts.iter().all(|&c| c == 30), "a reader saw part of a transaction: {counts:?}");

    assert_exact(&shop, &db, &admin).await;
    // The KPI, read afresh from the replica at the commit, equals SQL.
    let sql = "SELECT status, count(*)::text FROM orders GROUP BY status";
    let expected: BTreeMap<String, String> =
        db.query(sql, &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let d = data(shop.addr, &admin, "{ kpis(builtin: false) { groups { key value } } }", json!({})).await;
        let groups = d["kpis"][0]["groups"].as_array().cloned().unwrap_or_default();
        let served: BTreeMap<String, String> = groups
            .iter()
            .map(|g| (g["key"]["status"].as_str().unwrap().into(), g["value"].as_str().unwrap().into()))
            .collect();
        if served == expected {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the KPI {served:?} is not SQL's {expected:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Bounded: the transaction's 1,000,001 changes (hundreds of MB decoded) never held more
    // than the budget, and they did pass through it (in parts, not skipped).
    let peak = metric(shop.addr, "opslive_transaction_buffer_bytes", &[("which", "peak")]).await.unwrap();
    eprintln!("peak held by the transaction: {peak} bytes of a {BUDGET}-byte budget; {} reads during it", counts.len());
    assert!(peak <= BUDGET as f64, "the transaction held {peak} bytes, over the {BUDGET}-byte budget");
    assert!(peak >= (BUDGET / 4) as f64, "the transaction passed through in parts (peak {peak})");
    let held = metric(shop.addr, "opslive_transaction_buffer_bytes", &[("which", "now")]).await.unwrap();
    assert_eq!(held, 0.0, "nothing is held once it is applied");
    shop.serve.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_cut_off_mid_transaction_sends_it_again_and_its_applied_parts_are_taken_back() {
    let (mut shop, db, admin) = start().await;
    let list = "subscription { orders(orderBy: {id: DESC}, limit: 5) { id status } }";
    let mut ws = WsClient::connect(shop.addr, TRANSPORT_WS, &admin).await;
    ws.subscribe("list", list, json!({})).await;
    let first = seq(&ws.next("list").await);

    db.batch_execute(&large(200_000)).await.unwrap();
    // Parts are on their way: end the replication connection under them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while metric(shop.addr, "opslive_transaction_buffer_bytes", &[("which", "now")]).await.unwrap_or(0.0) == 0.0 {
        assert!(tokio::time::Instant::now() < deadline, "no part of the transaction was ever in flight");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ended = db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_replication", &[]).await.unwrap();
    assert_eq!(ended.len(), 1, "one walsender was serving opslive");
    tokio::time::timeout(Duration::from_secs(120), shop.serve.wait_log("taken back", |_| {}))
        .await
        .expect("the parts applied before the cut are taken back");

    // Sent again whole: one message, its end state.
    let message = tokio::time::timeout(Duration::from_secs(300), ws.message()).await.unwrap().expect("an update");
    assert_eq!(message["id"], "list");
    assert_eq!(seq(&message["payload"]), first + 1, "one message for the transaction");
    let query = list.replacen("subscription", "query", 1);
    assert_eq!(message["payload"]["data"], data(shop.addr, &admin, &query, json!({})).await);
    assert_exact(&shop, &db, &admin).await;
    shop.serve.terminate().await;
}
