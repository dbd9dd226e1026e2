//! Running opslive's PostgreSQL pipeline in-process against a test server, and reading the
//! expected rows back from PostgreSQL for comparison.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use opslive::change::{Key, Position, SourceEvent};
use opslive::config::SecretUrl;
use opslive::error::SourceError;
use opslive::pipeline::{ApplyLoop, CHANNEL_CAPACITY};
use opslive::registry::{Registry, TableId};
use opslive::replica::{Anomaly, Replica};
use opslive::source::postgres::{PostgresSource, text};
use opslive::value::Value;
use opslive::watermark::Watermarks;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What the apply loop saw, for assertions.
#[derive(Default)]
pub struct Seen {
    pub anomalies: Vec<Anomaly>,
    /// Position of every applied (not skipped) transaction, in apply order.
    pub positions: Vec<Position>,
    /// The same per table: a table copied again on its own (resync) catches up with its held
    /// changes after others have moved on, so order holds table by table.
    pub by_table: HashMap<opslive::registry::TableId, Vec<Position>>,
    pub skipped: usize,
    /// Transactions that came in parts (counted at their first).
    pub parted: usize,
    pub consistent_at: Option<Position>,
    /// How many times each table's rows were copied (initial snapshots and resyncs).
    pub copies: HashMap<opslive::registry::TableId, usize>,
}

pub struct Running {
    pub versions: watch::Receiver<Arc<Replica>>,
    pub seen: Arc<Mutex<Seen>>,
    pub watermarks: Arc<Watermarks>,
    pub cancel: CancellationToken,
    pub source: JoinHandle<Result<(), SourceError>>,
    pub applier: JoinHandle<Replica>,
    pub registry: Arc<Registry>,
    pub stats: Arc<opslive::source::SourceStats>,
    /// Resyncs asked of the source (as the API and reconfiguration ask).
    pub requests: Arc<opslive::source::ResyncRequests>,
    /// What large transactions held on their way (shared by the source and the apply loop).
    pub memory: Arc<opslive::tx_memory::TxMemory>,
}

/// Starts source + replica for `tables` (`schema.table` names, GraphQL name = table name).
pub fn start(url: &str, slot: &str, tables: &[&str]) -> Running {
    start_with_binary(url, slot, tables, opslive::config::DEFAULT_POSTGRES_BINARY)
}

/// Like [`start`], asking for binary tuples or not.
pub fn start_with_binary(url: &str, slot: &str, tables: &[&str], binary: bool) -> Running {
    let registry = Registry::default();
    for t in tables {
        let (schema, table) = t.split_once('.').unwrap_or(("public", t));
        registry.add("src".into(), schema, table, table, vec![], vec![]).unwrap();
    }
    let registry = Arc::new(registry);
    let watermarks = Arc::new(Watermarks::default());
    let url = SecretUrl::parse(url).unwrap();
    let mut source =
        PostgresSource::new("src", &url, slot.into(), format!("{slot}_pub"), registry.clone(), watermarks.clone())
            .unwrap();
    source.binary = binary;
    let stats = source.stats.clone();
    let requests = source.requests.clone();
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let cancel = CancellationToken::new();
    let memory = source.memory.clone();
    let source = tokio::spawn(source.run(tx, cancel.clone()));
    let (mut apply, versions) = ApplyLoop::new(HashMap::from([(Arc::from("src"), watermarks.clone())]));
    apply.memory = memory.clone();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let applier = spawn_applier(apply, rx, seen.clone());
    Running { versions, seen, watermarks, cancel, source, applier, registry, stats, requests, memory }
}

impl Running {
    /// Waits (on replica versions, not time) until `pred` holds; panics with the source's
    /// error if the source stops first.
    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Replica) -> bool) -> Arc<Replica> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            {
                let current = self.versions.borrow_and_update().clone();
                if pred(&current) {
                    return current;
                }
            }
            if self.source.is_finished() {
                let r = (&mut self.source).await;
                panic!("source stopped while waiting for {what}: {r:?}");
            }
            tokio::select! {
                changed = self.versions.changed() => changed.expect("apply loop ended"),
                _ = tokio::time::sleep_until(deadline) => panic!("timed out waiting for {what}"),
                // The source ending is noticed at the top of the loop.
                _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
            }
        }
    }

    pub fn table_id(&self, name: &str) -> TableId {
        self.registry.by_name(name).unwrap().id
    }

    pub async fn stop(self) -> Replica {
        self.cancel.cancel();
        let r = self.source.await.unwrap();
        assert!(r.is_ok(), "source ended with {r:?}");
        self.applier.await.unwrap()
    }
}

/// Reads a table from PostgreSQL over the simple-query (text) protocol — a different path
/// from COPY and pgoutput — and parses it with the replica's column types, keyed like the
/// replica.
pub async fn source_rows(client: &tokio_postgres::Client, replica: &Replica, table: TableId) -> Vec<(Key, Vec<Value>)> {
    let t = replica.table(table).expect("table in replica");
    let schema = &t.schema;
    let cols = schema.columns.iter().map(|c| format!("\"{}\"", c.name)).collect::<Vec<_>>().join(", ");
    client
        .batch_execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = iso_8601; SET extra_float_digits = 3; SET bytea_output = hex")
        .await
        .unwrap();
    let msgs = client.simple_query(&format!("SELECT {cols} FROM {}", schema.spec.qualified_sql())).await.unwrap();
    let mut rows: Vec<(Key, Vec<Value>)> = msgs
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .map(|r| {
            let row: Vec<Value> = schema
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| match r.get(i) {
                    None => Value::Null,
                    Some(s) => text::parse(&c.ty, s).unwrap(),
                })
                .collect();
            (Key::of(&row, &schema.key), row)
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

/// Asserts the replica's table equals `expected` row for row, with a readable first mismatch.
pub fn assert_same(replica: &Replica, table: TableId, expected: &[(Key, Vec<Value>)]) {
    let t = replica.table(table).unwrap();
    let got: Vec<(&Key, &[Value])> = t.rows().map(|(k, r)| (k, &r[..])).collect();
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert_eq!(g.0, &e.0, "row {i} of {}: key differs", t.schema.spec);
        assert_eq!(g.1, &e.1[..], "row {i} of {} (key {:?}): values differ", t.schema.spec, e.0);
    }
    assert_eq!(
        got.len(),
        expected.len(),
        "{}: replica has {} rows, source {}",
        t.schema.spec,
        got.len(),
        expected.len()
    );
}

/// Asserts the replica's table holds `expected` spelled alike too: numerics with the same
/// digits, floats with the same bits ([`Value::same_spelling`]), which `==` does not tell apart.
#[allow(dead_code)]
pub fn assert_same_spelling(replica: &Replica, table: TableId, expected: &[(Key, Vec<Value>)]) {
    let t = replica.table(table).unwrap();
    assert_eq!(t.len(), expected.len(), "{}: row count", t.schema.spec);
    for ((key, row), (_, want)) in t.rows().zip(expected) {
        for ((got, want), column) in row.iter().zip(want).zip(&t.schema.columns) {
            assert!(
                same_spelling_deep(got, want),
                "{} key {key:?} column `{}`: {got:?} is not spelled as {want:?}",
                t.schema.spec,
                column.name
            );
        }
    }
}

fn same_spelling_deep(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| same_spelling_deep(a, b))
        }
        _ => a.same_spelling(b),
    }
}

/// Starts a source of any kind through the contract (`source::open` and `supervise`, as
/// `serve` runs it) from its `[sources.src]` TOML, resuming from `from` (a replica an earlier
/// run left) when given. Tables are the configuration's.
pub fn start_configured(source_toml: &str, from: Option<Replica>) -> Running {
    use opslive::source::{Resume, SessionKind, Wiring};
    let config = opslive::config::Config::from_toml(&format!(
        "[app_database]\nurl = \"postgres://unused@127.0.0.1:1/opslive\"\n[sources.src]\n{source_toml}"
    ))
    .unwrap();
    let registry = Arc::new(config.registry().unwrap());
    let watermarks = Arc::new(Watermarks::default());
    let marks = HashMap::from([(Arc::from("src"), watermarks.clone())]);
    let (mut apply, versions) = match from {
        Some(replica) => ApplyLoop::starting_from(replica, marks),
        None => ApplyLoop::new(marks),
    };
    apply.memory = Arc::new(opslive::tx_memory::TxMemory::new(config.transactions.buffer_bytes));
    let stats = Arc::new(opslive::source::SourceStats::default());
    let requests = Arc::new(opslive::source::ResyncRequests::default());
    let resume = {
        let (versions, registry) = (versions.clone(), registry.clone());
        Arc::new(move || Resume::from_replica(&versions.borrow(), &registry, "src"))
    };
    let wiring = Wiring {
        registry: registry.clone(),
        watermarks: watermarks.clone(),
        stats: stats.clone(),
        requests: requests.clone(),
        durable: true,
        resume,
        session: SessionKind::Serving,
        memory: apply.memory.clone(),
        take_over: false,
    };
    let source = opslive::source::open("src", &config.sources["src"], wiring).unwrap();
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let cancel = CancellationToken::new();
    let source = tokio::spawn(opslive::source::supervise("src".into(), source, stats.clone(), tx, cancel.clone()));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let memory = apply.memory.clone();
    let applier = spawn_applier(apply, rx, seen.clone());
    Running { versions, seen, watermarks, cancel, source, applier, registry, stats, requests, memory }
}

/// Runs the apply loop, noting what it saw in `seen`.
fn spawn_applier(apply: ApplyLoop, rx: mpsc::Receiver<SourceEvent>, seen: Arc<Mutex<Seen>>) -> JoinHandle<Replica> {
    let s = seen;
    tokio::spawn(apply.run(rx, Vec::new(), move |event, applied| {
        let mut s = s.lock().unwrap();
        s.anomalies.extend(applied.anomalies.iter().cloned());
        match event {
            SourceEvent::Transaction(_) if applied.skipped => s.skipped += 1,
            SourceEvent::Part(part) if part.last && applied.skipped => s.skipped += 1,
            SourceEvent::Part(part) if part.index == 0 => s.parted += 1,
            SourceEvent::Transaction(tx) | SourceEvent::Part(opslive::change::TxPart { tx, last: true, .. }) => {
                s.positions.push(tx.position);
                let mut tables: Vec<_> = tx.changes.iter().map(|c| c.table).collect();
                tables.dedup();
                for t in tables {
                    let list = s.by_table.entry(t).or_default();
                    if list.last() != Some(&tx.position) {
                        list.push(tx.position);
                    }
                }
            }
            SourceEvent::Consistent { position, .. } => s.consistent_at = Some(*position),
            SourceEvent::Table(opslive::change::TableEvent::SnapshotBegin { schema, .. }) => {
                *s.copies.entry(schema.id()).or_default() += 1;
            }
            _ => {}
        }
    }))
}
