//! `opslive simulate`: every business flow happens on the fixtures and the data stays consistent;
//! the planner follows the day's shape, spikes on `--burst` and repeats itself for a seed; a
//! database without the schema is refused before anything is written, and one that goes away
//! ends the run with a clear error.

mod support;

use std::collections::HashMap;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use opslive::sim::plan::Driver;
use opslive::sim::shape::{self, BurstSchedule, Region};
use opslive::sim::{Backlog, EventKind, Planner, SimError, SimOptions, SimStats, parse_duration, parse_start};
use support::PgServer;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

async fn load(client: &tokio_postgres::Client, files: &[&str]) {
    for file in files {
        let sql = std::fs::read_to_string(file).unwrap();
        client.batch_execute(&sql).await.unwrap_or_else(|e| panic!("{file}: {e:?}"));
    }
}

/// A Monday, so the weekday curve applies.
fn monday_at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 4, hour, 0, 0).unwrap()
}

/// A backlog at its targets, so work runs at its normal share.
fn steady_backlog() -> Backlog {
    Backlog {
        pending_orders: 100,
        paid_orders: 100,
        picking_orders: 100,
        shipped_orders: 100,
        delivered_orders: 100,
        low_stock: 100,
        new_tickets: 100,
        unanswered_tickets: 100,
        pending_tickets: 100,
        answered_tickets: 100,
        solved_tickets: 100,
        agents: 40,
        open_batches: 5,
        open_exceptions: 50,
    }
}

fn is_volume(kind: EventKind) -> bool {
    matches!(kind.driver(), Driver::Intake(_) | Driver::Work(_) | Driver::Batched(_) | Driver::WhileAny(_))
}

/// Plans events until `until` seconds after start; returns them as (seconds, kind).
fn plan(options: &SimOptions, until: f64) -> Vec<(f64, EventKind)> {
    let backlog = steady_backlog();
    let mut planner = Planner::new(options, options.start.unwrap(), backlog.clone());
    let mut events = Vec::new();
    loop {
        let p = planner.next(&backlog);
        let at = p.at.as_secs_f64();
        if at >= until {
            return events;
        }
        events.push((at, p.kind));
    }
}

fn count(events: &[(f64, EventKind)], kind: EventKind, from: f64, to: f64) -> usize {
    events.iter().filter(|(at, k)| *k == kind && *at >= from && *at < to).count()
}

// ---------------------------------------------------------------------------------------------
// Against a database
// ---------------------------------------------------------------------------------------------

const FLOWS: &str = "
SELECT
  (SELECT count(DISTINCT channel) FROM orders WHERE created_at >= $1::text::timestamptz) >= 3,
  EXISTS (SELECT 1 FROM orders WHERE created_at >= $1::text::timestamptz AND status <> 'pending'),
  EXISTS (SELECT 1 FROM orders WHERE status = 'paid' AND paid_at >= $1::text::timestamptz),
  EXISTS (SELECT 1 FROM orders WHERE status = 'picking' AND updated_at >= $1::text::timestamptz),
  EXISTS (SELECT 1 FROM orders WHERE status = 'shipped' AND shipped_at >= $1::text::timestamptz),
  EXISTS (SELECT 1 FROM orders WHERE status = 'delivered' AND updated_at >= $1::text::timestamptz),
  EXISTS (SELECT 1 FROM orders WHERE status = 'cancelled' AND updated_at >= $1::text::timestamptz),
  EXISTS (SELECT 1 FROM orders WHERE status = 'refunded' AND updated_at >= $1::text::timestamptz),
  EXISTS (SELECT 1 FROM tickets WHERE opened_at >= $1::text::timestamptz),
  EXISTS (SELECT 1 FROM tickets WHERE opened_at >= $1::text::timestamptz AND assignee_id IS NOT NULL),
  EXISTS (SELECT 1 FROM tickets WHERE first_response_at >= $1::text::timestamptz),
  EXISTS (SELECT 1 FROM tickets WHERE solved_at >= $1::text::timestamptz),
  EXISTS (SELECT 1 FROM tickets WHERE status = 'closed' AND updated_at >= $1::text::timestamptz),
  EXISTS (SELECT 1 FROM agents WHERE updated_at >= $1::text::timestamptz),
  EXISTS (SELECT 1 FROM reconciliation_batches WHERE status = 'matched' AND closed_at >= $1::text::timestamptz),
  EXISTS (SELECT 1 FROM reconciliation_exceptions WHERE created_at >= $1::text::timestamptz),
  EXISTS (SELECT 1 FROM reconciliation_exceptions WHERE resolved_at >= $1::text::timestamptz)";

const FLOW_NAMES: [&str; 17] = [
    "new orders in 3+ channels",
    "a new order advanced",
    "an order paid",
    "an order being picked",
    "an order shipped",
    "an order delivered",
    "an order cancelled",
    "an order refunded",
    "a ticket opened",
    "a new ticket assigned",
    "a ticket answered",
    "a ticket solved",
    "a ticket closed",
    "an agent's availability changed",
    "a reconciliation batch matched",
    "a reconciliation exception raised",
    "a reconciliation exception resolved",
];

/// Each query counts rows breaking a rule the simulator keeps.
const INVARIANTS: [(&str, &str); 10] = [
    (
        "shipped orders have paid_at <= shipped_at",
        "SELECT count(*) FROM orders WHERE status IN ('shipped', 'delivered', 'refunded')
           AND (paid_at IS NULL OR shipped_at IS NULL OR shipped_at < paid_at)",
    ),
    ("paid orders have paid_at", "SELECT count(*) FROM orders WHERE status IN ('paid', 'picking') AND paid_at IS NULL"),
    (
        "order timestamps follow each other",
        "SELECT count(*) FROM orders WHERE updated_at < created_at OR paid_at < created_at OR updated_at < shipped_at",
    ),
    (
        "new orders have a positive total and items",
        "SELECT count(*) FROM orders WHERE created_at >= $1::text::timestamptz AND (total <= 0 OR item_count < 1)",
    ),
    ("stock is never reserved beyond what is on hand", "SELECT count(*) FROM inventory WHERE reserved > on_hand"),
    (
        "solved tickets were answered, then solved",
        "SELECT count(*) FROM tickets WHERE status IN ('solved', 'closed')
           AND (solved_at IS NULL OR first_response_at IS NULL OR solved_at < first_response_at)",
    ),
    ("tickets past new have an assignee", "SELECT count(*) FROM tickets WHERE status <> 'new' AND assignee_id IS NULL"),
    ("responses come after opening", "SELECT count(*) FROM tickets WHERE first_response_at < opened_at"),
    (
        "batches never match more than expected",
        "SELECT count(*) FROM reconciliation_batches WHERE matched_count > expected_count OR matched_amount > expected_amount",
    ),
    (
        "batches matched by the simulator matched everything and are closed",
        "SELECT count(*) FROM reconciliation_batches WHERE status = 'matched' AND updated_at >= $1::text::timestamptz
           AND (matched_count <> expected_count OR matched_amount <> expected_amount OR closed_at IS NULL)",
    ),
];

async fn on_hand(client: &tokio_postgres::Client) -> HashMap<(String, String), i32> {
    client
        .query("SELECT sku, warehouse_id, on_hand FROM inventory", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flow_happens_on_the_fixtures_and_the_data_stays_consistent() {
    let pg = PgServer::start().await;
    let url = pg.create_database("shop").await;
    let client = pg.connect("shop").await;
    load(&client, &["fixtures/postgres/schema.sql", "fixtures/postgres/seed.sql"]).await;
    // Small open batches of their own, so both reconciliation outcomes (matched, exception)
    // come up within seconds rather than by luck.
    client
        .batch_execute(
            "INSERT INTO reconciliation_batches (account, batch_date, expected_count, expected_amount)
             SELECT 'test-' || g, current_date - 1, 100 + g, (100 + g) * 40.0 FROM generate_series(1, 30) AS g",
        )
        .await
        .unwrap();
    let t0: String = client.query_one("SELECT now()::text", &[]).await.unwrap().get(0);
    let stock_before = on_hand(&client).await;

    let options = SimOptions {
        rate: 400.0,
        burst: None,
        // Two-minute days, so shifts and the reconciliation job show up within seconds too.
        day_length: Duration::from_secs(120),
        start: Some(Utc::now().date_naive().and_hms_opt(10, 0, 0).unwrap().and_utc()),
        seed: 7,
        connections: 3,
        helpdesk: None,
    };
    let stats = Arc::new(SimStats::default());
    let cancel = CancellationToken::new();
    let sim = tokio::spawn({
        let (url, stats, cancel) = (url.clone(), stats.clone(), cancel.clone());
        async move { opslive::sim::run(&url, options, stats, cancel).await }
    });

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut missing: Vec<&str>;
    loop {
        assert!(!sim.is_finished(), "the simulator stopped early: {:?}", sim.await);
        let row = client.query_one(FLOWS, &[&t0]).await.unwrap();
        missing = FLOW_NAMES.iter().enumerate().filter(|(i, _)| !row.get::<_, bool>(*i)).map(|(_, n)| *n).collect();
        let stock_now = on_hand(&client).await;
        if !stock_now.iter().any(|(k, v)| stock_before.get(k).is_some_and(|b| v < b)) {
            missing.push("stock picked");
        }
        if !stock_now.iter().any(|(k, v)| stock_before.get(k).is_some_and(|b| v > b)) {
            missing.push("stock replenished");
        }
        if missing.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        missing.is_empty(),
        "not seen within 20 s: {missing:?}; events by kind: {:?}, skipped {}, failed {}",
        stats.by_kind(),
        stats.skipped(),
        stats.failed()
    );

    let stopping = Instant::now();
    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(10), sim).await.expect("run did not return after cancel");
    result.unwrap().expect("run returns Ok when cancelled");
    assert!(stopping.elapsed() < Duration::from_secs(5), "stopping took {:?}", stopping.elapsed());

    for kind in EventKind::ALL {
        assert!(stats.events(kind) > 0, "no {} event was recorded: {:?}", kind.name(), stats.by_kind());
    }
    assert_eq!(stats.failed(), 0, "no statement should fail");
    for (rule, sql) in INVARIANTS {
        let broken: i64 = if sql.contains("$1") {
            client.query_one(sql, &[&t0]).await.unwrap().get(0)
        } else {
            client.query_one(sql, &[]).await.unwrap().get(0)
        };
        assert_eq!(broken, 0, "{rule}: {broken} rows break it");
    }
}

/// Support flows seen in the helpdesk's own MariaDB since `?` (a time in the session's zone).
const HELPDESK_FLOWS: [(&str, &str); 6] = [
    ("a ticket opened", "SELECT count(*) FROM tickets WHERE opened_at >= ?"),
    ("a new ticket assigned", "SELECT count(*) FROM tickets WHERE opened_at >= ? AND assignee_id IS NOT NULL"),
    ("a ticket answered", "SELECT count(*) FROM tickets WHERE first_response_at >= ?"),
    ("a ticket solved", "SELECT count(*) FROM tickets WHERE solved_at >= ?"),
    ("a ticket closed", "SELECT count(*) FROM tickets WHERE status = 'closed' AND updated_at >= ?"),
    ("an agent's availability changed", "SELECT count(*) FROM agents WHERE updated_at >= ?"),
];

/// The ticket rules of [`INVARIANTS`] (the same SQL runs in MariaDB), and one more.
fn helpdesk_invariants() -> Vec<(&'static str, &'static str)> {
    let mut rules: Vec<_> = INVARIANTS.into_iter().filter(|(_, sql)| sql.contains("FROM tickets")).collect();
    assert_eq!(rules.len(), 3, "the ticket rules");
    rules.push((
        "a ticket's assignee works its queue",
        "SELECT count(*) FROM tickets t JOIN agents a ON a.id = t.assignee_id WHERE a.queue <> t.queue",
    ));
    rules
}

/// The demo's split: the shop in PostgreSQL without the helpdesk's tables, tickets and agents in
/// a MariaDB of their own. Every support flow happens there, through MariaDB's statements, and
/// keeps the same rules; the shop's flows go on beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helpdesk_in_mariadb_gets_every_support_flow_and_keeps_its_rules() {
    use mysql_async::prelude::Queryable;
    let pg = PgServer::start().await;
    let url = pg.create_database("shop").await;
    let client = pg.connect("shop").await;
    load(&client, &["fixtures/postgres/schema.sql", "fixtures/postgres/seed.sql"]).await;
    client.batch_execute("DROP TABLE tickets, agents").await.unwrap();
    let maria = support::mariadb::MariaDbServer::start().await;
    // A helpdesk database without the tables is refused before anything is written.
    let empty = maria.create_database("empty").await;
    let refused = SimOptions { helpdesk: Some(empty), ..SimOptions::default() };
    let err = opslive::sim::run(&url, refused, Arc::new(SimStats::default()), CancellationToken::new())
        .await
        .expect_err("no helpdesk tables");
    let message = err.to_string();
    assert!(message.contains("missing table agents") && message.contains("fixtures/mariadb/schema.sql"), "{message}");
    let helpdesk = maria.create_database("helpdesk").await;
    let mut conn = maria.connect("helpdesk").await;
    conn.query_drop(opslive::demo::FIXTURE_HELPDESK_SCHEMA).await.unwrap();
    conn.query_drop(opslive::demo::FIXTURE_HELPDESK_SEED).await.unwrap();
    let seeded: i64 = conn.query_first("SELECT count(*) FROM tickets").await.unwrap().unwrap();
    assert_eq!(seeded, 6000);
    let t0: String = conn.query_first("SELECT CAST(NOW(6) AS CHAR)").await.unwrap().unwrap();

    let options = SimOptions {
        rate: 400.0,
        day_length: Duration::from_secs(120),
        start: Some(Utc::now().date_naive().and_hms_opt(10, 0, 0).unwrap().and_utc()),
        seed: 7,
        connections: 3,
        helpdesk: Some(helpdesk.clone()),
        ..SimOptions::default()
    };
    let stats = Arc::new(SimStats::default());
    let cancel = CancellationToken::new();
    let sim = tokio::spawn({
        let (url, stats, cancel) = (url.clone(), stats.clone(), cancel.clone());
        async move { opslive::sim::run(&url, options, stats, cancel).await }
    });
    let support_kinds: Vec<EventKind> = EventKind::ALL
        .into_iter()
        .filter(|k| k.name().starts_with("ticket_") || k.name().starts_with("agent_"))
        .collect();
    assert_eq!(support_kinds.len(), 7);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut missing: Vec<&str>;
    loop {
        assert!(!sim.is_finished(), "the simulator stopped early: {:?}", sim.await);
        missing = Vec::new();
        for (flow, sql) in HELPDESK_FLOWS {
            let n: i64 = conn.exec_first(sql, (t0.as_str(),)).await.unwrap().unwrap();
            if n == 0 {
                missing.push(flow);
            }
        }
        missing.extend(support_kinds.iter().filter(|k| stats.events(**k) == 0).map(|k| k.name()));
        if stats.events(EventKind::OrderPlaced) == 0 {
            missing.push("order_placed");
        }
        if missing.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(missing.is_empty(), "not seen within 30 s: {missing:?}; events by kind: {:?}", stats.by_kind());
    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(10), sim).await.expect("run did not return after cancel");
    result.unwrap().expect("run returns Ok when cancelled");
    assert_eq!(stats.failed(), 0, "no statement should fail");
    for (rule, sql) in helpdesk_invariants() {
        let broken: i64 = conn.query_first(sql).await.unwrap().unwrap();
        assert_eq!(broken, 0, "{rule}: {broken} rows break it");
    }
    // Each ticket's customer is one of the shop's.
    let customers: Vec<i64> = conn.query("SELECT DISTINCT customer_id FROM tickets").await.unwrap();
    let known: i64 =
        client.query_one("SELECT count(*) FROM customers WHERE id = ANY($1)", &[&customers]).await.unwrap().get(0);
    assert_eq!(known as usize, customers.len(), "tickets name customers the shop has");
}

/// Just enough reference data for a business: one warehouse, a few customers, products, agents.
const TINY_SHOP: &str = "
INSERT INTO warehouses VALUES ('WH-BER', 'Berlin', 'eu', 'Europe/Berlin');
INSERT INTO customers (name, email, region) SELECT 'C' || g, g || '@example.com', 'eu' FROM generate_series(1, 10) AS g;
INSERT INTO products SELECT 'SKU-' || g, 'Product ' || g, 'misc', 9.99 FROM generate_series(1, 20) AS g;
INSERT INTO inventory (sku, warehouse_id, on_hand, reorder_point) SELECT sku, 'WH-BER', 100, 10 FROM products;
INSERT INTO agents (name, queue, availability) SELECT 'A' || g, q, 'online'
  FROM generate_series(1, 2) AS g, unnest(ARRAY['billing', 'shipping', 'returns', 'technical']) AS q;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_goes_away_ends_the_run_with_a_clear_error() {
    let pg = PgServer::start().await;
    let url = pg.create_database("tiny").await;
    let client = pg.connect("tiny").await;
    load(&client, &["fixtures/postgres/schema.sql"]).await;
    client.batch_execute(TINY_SHOP).await.unwrap();

    let stats = Arc::new(SimStats::default());
    let options = SimOptions { rate: 200.0, connections: 2, seed: 1, ..SimOptions::default() };
    let sim = tokio::spawn({
        let (url, stats) = (url.clone(), stats.clone());
        async move { opslive::sim::run(&url, options, stats, CancellationToken::new()).await }
    });
    // Running on a business this small proves it needs no seed data beyond reference rows.
    let deadline = Instant::now() + Duration::from_secs(15);
    while stats.events(EventKind::OrderPicked) == 0 || stats.events(EventKind::TicketAssigned) == 0 {
        assert!(Instant::now() < deadline, "no orders picked or tickets assigned: {:?}", stats.by_kind());
        assert!(!sim.is_finished(), "the simulator stopped early: {:?}", sim.await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pg.kill().await;
    let result = tokio::time::timeout(Duration::from_secs(15), sim).await.expect("run did not notice the server died");
    let err = result.unwrap().expect_err("run fails when the database goes away");
    assert!(matches!(err, SimError::ConnectionLost { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.starts_with("lost the connection to postgres://postgres@127.0.0.1:"), "{message}");
}

async fn opslive(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_opslive"));
    cmd.args(args).env_remove("OPSLIVE_CONFIG").env("OPSLIVE_LOG", "warn").kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), cmd.output()).await.expect("opslive did not exit").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_without_the_schema_is_refused_before_anything_is_written() {
    let pg = PgServer::start().await;

    let url = pg.create_database("empty").await;
    let err = opslive::sim::check_schema(&url).await.expect_err("an empty database has no schema");
    assert!(matches!(err, SimError::SchemaMissing { .. }), "{err:?}");
    let message = err.to_string();
    for needle in ["missing tables warehouses, customers, orders", "fixtures/postgres/schema.sql", "opslive demo"] {
        assert!(message.contains(needle), "message should mention {needle:?}:\n{message}");
    }
    let stats = Arc::new(SimStats::default());
    let err = opslive::sim::run(&url, SimOptions::default(), stats.clone(), CancellationToken::new())
        .await
        .expect_err("run refuses too");
    assert!(matches!(err, SimError::SchemaMissing { .. }), "{err:?}");
    assert_eq!(stats.total(), 0);
    let tables: i64 = pg
        .connect("empty")
        .await
        .query_one("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "nothing may be created");

    let out = opslive(&["simulate", "--url", &url]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    for needle in ["missing tables warehouses", "psql -v ON_ERROR_STOP=1", "fixtures/postgres/schema.sql"] {
        assert!(stderr.contains(needle), "stderr should mention {needle:?}:\n{stderr}");
    }

    // The schema without rows to make orders from: the message asks for the seed data.
    let url = pg.create_database("bare").await;
    let client = pg.connect("bare").await;
    load(&client, &["fixtures/postgres/schema.sql"]).await;
    let message = opslive::sim::check_schema(&url).await.expect_err("no reference rows").to_string();
    for needle in ["no rows in warehouses, inventory, customers, agents", "fixtures/postgres/seed.sql"] {
        assert!(message.contains(needle), "message should mention {needle:?}:\n{message}");
    }

    // A column gone is named as such.
    client
        .batch_execute("ALTER TABLE orders DROP COLUMN notes; ALTER TABLE tickets DROP COLUMN subject")
        .await
        .unwrap();
    let message = opslive::sim::check_schema(&url).await.expect_err("columns missing").to_string();
    assert!(message.contains("missing columns orders.notes, tickets.subject"), "{message}");
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error() {
    let port = support::free_port();
    let url = format!("postgres://postgres:secret@127.0.0.1:{port}/shop");
    let err = opslive::sim::check_schema(&url).await.expect_err("nothing listens there");
    assert!(matches!(err, SimError::Connect { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("cannot connect to postgres://postgres:REDACTED@127.0.0.1:{port}/shop")),
        "{message}"
    );
    assert!(message.contains("error connecting to server"), "{message}");
    assert!(!message.contains("secret"), "{message}");

    let out = opslive(&["simulate", "--url", &url]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("cannot connect to") && !stderr.contains("secret"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// The planner, without a database
// ---------------------------------------------------------------------------------------------

#[test]
fn the_day_is_quiet_at_night_busy_late_morning_and_evening_and_averages_one() {
    // Each region's own day: the small hours are a fraction of the evening peak.
    let eu = |hour| shape::local_intensity(Region::Eu.local(monday_at(hour)));
    assert!(eu(3) < 0.25 * eu(18), "eu night {} vs evening {}", eu(3), eu(18));
    assert!(eu(11) > 2.0 * eu(6), "eu late morning {} vs early morning {}", eu(11), eu(6));

    for day in [monday_at(0), monday_at(0) + chrono::Duration::days(5)] {
        let samples: Vec<f64> =
            (0..24 * 12).map(|i| shape::intensity(day + chrono::Duration::minutes(5 * i))).collect();
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        let (min, max) = samples.iter().fold((f64::MAX, 0.0f64), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
        assert!((mean - 1.0).abs() < 0.01, "the day averages {mean}, not 1 ({day})");
        assert!(min < 0.6 * max, "the quietest hour ({min}) should be clearly below the peak ({max}) on {day}");
    }

    // Over a whole (compressed) day, the planner produces --rate events per second on average.
    let options = SimOptions {
        rate: 20.0,
        day_length: Duration::from_secs(3600),
        start: Some(monday_at(0)),
        seed: 3,
        ..SimOptions::default()
    };
    let events = plan(&options, 3600.0);
    let volume = events.iter().filter(|(_, k)| is_volume(*k)).count() as f64 / 3600.0;
    assert!((volume / 20.0 - 1.0).abs() < 0.03, "{volume} volume events/s over a day, wanted 20");
    // ...and fewer in the quietest simulated hours than in the busiest.
    let per_sim_hour: Vec<usize> =
        (0..24).map(|h| events.iter().filter(|(at, k)| is_volume(*k) && (*at / 150.0) as usize == h).count()).collect();
    let (quiet, busy) = (per_sim_hour.iter().min().unwrap(), per_sim_hour.iter().max().unwrap());
    assert!((*quiet as f64) < 0.6 * *busy as f64, "events per simulated hour: {per_sim_hour:?}");
}

#[test]
fn durations_and_start_times_parse() {
    assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
    assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
    assert_eq!(parse_duration(" 500ms "), Ok(Duration::from_millis(500)));
    for bad in ["", "10", "10x", "h", "1..5h", "-5m"] {
        assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
    }
    assert!(parse_duration("10").unwrap_err().contains("needs a unit"));

    let today = chrono::NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
    assert_eq!(parse_start("09:30", today), Ok(Utc.with_ymd_and_hms(2024, 3, 4, 9, 30, 0).unwrap()));
    assert_eq!(parse_start("23:59:59", today), Ok(Utc.with_ymd_and_hms(2024, 3, 4, 23, 59, 59).unwrap()));
    assert_eq!(parse_start("2024-03-02T10:00:00+01:00", today), Ok(Utc.with_ymd_and_hms(2024, 3, 2, 9, 0, 0).unwrap()));
    assert!(parse_start("9.30", today).is_err());
}

#[test]
fn bursts_multiply_order_intake_and_then_tickets() {
    let options =
        SimOptions { rate: 100.0, burst: Some(5.0), start: Some(monday_at(11)), seed: 11, ..SimOptions::default() };
    let schedule = BurstSchedule::new(5.0, options.seed);
    let first = schedule.spike_start(0);
    assert_eq!(first, 15.0, "a spike right after start shows the effect in a demo");
    for k in 0..50 {
        let gap = schedule.spike_start(k + 1) - schedule.spike_start(k);
        assert!((240.0..=480.0).contains(&gap), "gap between spikes {k} and {}: {gap} s", k + 1);
    }

    let events = plan(&options, 400.0);
    // Order intake at the plateau of the first spike vs the same length of quiet time after it.
    let orders_spike = count(&events, EventKind::OrderPlaced, first + 5.0, first + 35.0);
    let orders_quiet = count(&events, EventKind::OrderPlaced, first + 120.0, first + 150.0);
    assert!(
        orders_spike as f64 > 3.0 * orders_quiet as f64,
        "orders placed in a spike {orders_spike} vs quiet {orders_quiet}"
    );
    // The ticket wave follows the sale.
    let tickets_wave = count(&events, EventKind::TicketOpened, first + 30.0, first + 70.0);
    let tickets_quiet = count(&events, EventKind::TicketOpened, first + 120.0, first + 160.0);
    assert!(
        tickets_wave as f64 > 3.0 * tickets_quiet as f64,
        "tickets opened in a wave {tickets_wave} vs quiet {tickets_quiet}"
    );
    // Work does not scale up at once: that is what makes the backlog build.
    let paid_spike = count(&events, EventKind::OrderPaid, first + 5.0, first + 35.0);
    let paid_quiet = count(&events, EventKind::OrderPaid, first + 120.0, first + 150.0);
    assert!((paid_spike as f64) < 1.5 * paid_quiet as f64, "payments in a spike {paid_spike} vs quiet {paid_quiet}");

    // Without --burst the same windows look alike.
    let calm = plan(&SimOptions { burst: None, ..options }, 400.0);
    let (a, b) = (
        count(&calm, EventKind::OrderPlaced, first + 5.0, first + 35.0),
        count(&calm, EventKind::OrderPlaced, first + 120.0, first + 150.0),
    );
    assert!((a as f64) < 1.5 * b as f64 && (b as f64) < 1.5 * a as f64, "without bursts: {a} vs {b}");
}

#[test]
fn the_same_seed_plans_the_same_events() {
    let options = SimOptions { rate: 50.0, start: Some(monday_at(9)), seed: 42, ..SimOptions::default() };
    let a = plan(&options, 60.0);
    let b = plan(&options, 60.0);
    assert!(a.len() > 1000, "{} events planned", a.len());
    assert_eq!(a, b);
    let other = plan(&SimOptions { seed: 43, ..options }, 60.0);
    assert_ne!(a, other, "another seed plans other events");
    // Every volume kind shows up in a minute at this rate.
    for kind in EventKind::ALL.into_iter().filter(|k| is_volume(*k)) {
        assert!(a.iter().any(|(_, k)| *k == kind), "{} never planned", kind.name());
    }
}
