//! The GraphQL API answers exactly what PostgreSQL answers: random data with NULLs, duplicates,
//! negative and huge numbers and Unicode text in a watched table, then many random filters,
//! orderings, pages and aggregates, each asked of the real server over HTTP and run as SQL
//! against the source database, and the two answers compared.
//!
//! Exact for integers, numerics (their text, scale included; for min, max and percentiles their
//! value, see below), text, booleans and timestamps; `count(DISTINCT)` and `percentile_disc`
//! are compared like the other aggregates.
//! Float sums and averages are compared within the error bound of the summation PostgreSQL
//! does: it adds the values one by one in scan order, which is off from the exact sum by at
//! most (n-1)·ε·Σ|x| (ε = 2⁻⁵³); opslive sums exactly and rounds once, so the two differ by no
//! more than that bound (plus one rounding). Float values themselves (rows, min, max) are exact.
//!
//! A run prints its seed; `GRAPHQL_VS_SQL_SEED=<seed>` replays it.

mod support;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value as Json, json};
use support::PgServer;
use support::graphql::{SECRET, post, token};
use support::serve::Serve;

const ROWS: i64 = 3000;

// ---------------------------------------------------------------------------------------------
// The table and its columns

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Int4,
    Int8,
    Numeric,
    Float8,
    Text,
    TimestampTz,
    Bool,
}

struct Col {
    sql: &'static str,
    gql: &'static str,
    kind: Kind,
}

const COLS: [Col; 9] = [
    Col { sql: "id", gql: "id", kind: Kind::Int8 },
    Col { sql: "grp", gql: "grp", kind: Kind::Text },
    Col { sql: "qty", gql: "qty", kind: Kind::Int4 },
    Col { sql: "big_num", gql: "bigNum", kind: Kind::Int8 },
    Col { sql: "amount", gql: "amount", kind: Kind::Numeric },
    Col { sql: "score", gql: "score", kind: Kind::Float8 },
    Col { sql: "label", gql: "label", kind: Kind::Text },
    Col { sql: "seen_at", gql: "seenAt", kind: Kind::TimestampTz },
    Col { sql: "flag", gql: "flag", kind: Kind::Bool },
];

const CREATE: &str = "CREATE TABLE fuzz (
    id bigint PRIMARY KEY,
    grp text,
    qty integer,
    big_num bigint,
    amount numeric,
    score double precision,
    label text,
    seen_at timestamptz,
    flag boolean
)";

/// Columns the replica keeps ordered indexes on: range filters and `orderBy` on them take the
/// index paths, the others the plain scan; both must give the same answers.
const INDEXES: [&str; 5] = ["qty", "grp", "amount", "score", "seen_at"];

/// One value, as GraphQL takes it (a variable) and as SQL spells it (a literal).
#[derive(Clone, Debug)]
struct Lit {
    gql: Json,
    sql: String,
}

fn sql_text(s: &str) -> String {
    // standard_conforming_strings is on: only quotes need doubling.
    format!("'{}'", s.replace('\'', "''"))
}

const GROUPS: [&str; 6] = ["a", "b", "B", "ab", "ä", ""];
const LETTERS: [&str; 14] = ["a", "b", "A", "B", "é", "É", "ä", "Ä", "日", "🙂", " ", "%", "_", "\\"];

fn random_text(rng: &mut StdRng) -> String {
    let len = rng.random_range(0..6);
    (0..len).map(|_| LETTERS[rng.random_range(0..LETTERS.len())]).collect()
}

fn random_numeric(rng: &mut StdRng) -> String {
    match rng.random_range(0..200) {
        0 => return "NaN".into(),
        1 => return "Infinity".into(),
        2 => return "-Infinity".into(),
        _ => {}
    }
    let digits = rng.random_range(1..22);
    let mut int: String = (0..digits).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect();
    let trimmed = int.trim_start_matches('0');
    int = if trimmed.is_empty() { "0".into() } else { trimmed.into() };
    let scale = rng.random_range(0..5);
    let frac: String = (0..scale).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect();
    let sign = if rng.random_bool(0.4) { "-" } else { "" };
    if scale == 0 { format!("{sign}{int}") } else { format!("{sign}{int}.{frac}") }
}

fn random_float(rng: &mut StdRng, literal: bool) -> f64 {
    // Not ±1e300: avg(float8) also sums squares, which overflow there and make PostgreSQL fail.
    let specials = [0.1, -0.0, 0.0, 1e150, -1e150, 5e-324, 1.5, -2.25];
    match rng.random_range(0..100) {
        // NaN and the infinities cannot be GraphQL Float literals.
        0 if !literal => f64::NAN,
        1 if !literal => f64::INFINITY,
        2..=9 => specials[rng.random_range(0..specials.len())],
        _ => (rng.random_range(-1e6..1e6f64) * 1000.0).round() / 1000.0,
    }
}

fn float_sql(x: f64) -> String {
    if x.is_nan() {
        "'NaN'::float8".into()
    } else if x.is_infinite() {
        if x > 0.0 { "'Infinity'::float8".into() } else { "'-Infinity'::float8".into() }
    } else {
        format!("'{x:?}'::float8")
    }
}

fn timestamp_lit(micros: i64) -> Lit {
    let text = chrono::DateTime::from_timestamp_micros(micros)
        .expect("a timestamp in range")
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    Lit { sql: format!("{}::timestamptz", sql_text(&text)), gql: Json::String(text) }
}

/// A random non-null value of a column's kind (`literal`: usable as a GraphQL argument).
fn random_value(rng: &mut StdRng, kind: Kind, literal: bool) -> Lit {
    match kind {
        Kind::Int4 => {
            let v: i32 = if rng.random_bool(0.05) { rng.random() } else { rng.random_range(-40..40) };
            Lit { gql: json!(v), sql: v.to_string() }
        }
        Kind::Int8 => {
            let v: i64 = if rng.random_bool(0.5) { rng.random() } else { rng.random_range(-1000..1000) };
            Lit { gql: json!(v.to_string()), sql: format!("'{v}'::bigint") }
        }
        Kind::Numeric => {
            let v = random_numeric(rng);
            Lit { sql: format!("{}::numeric", sql_text(&v)), gql: Json::String(v) }
        }
        Kind::Float8 => {
            let v = random_float(rng, literal);
            // JSON has no NaN or infinities; GraphQL would not take them as Float anyway.
            let gql = if v.is_finite() { json!(v) } else { Json::String(format!("{v}")) };
            Lit { gql, sql: float_sql(v) }
        }
        Kind::Text => {
            let v = if rng.random_bool(0.5) {
                GROUPS[rng.random_range(0..GROUPS.len())].to_string()
            } else {
                random_text(rng)
            };
            Lit { sql: sql_text(&v), gql: Json::String(v) }
        }
        Kind::TimestampTz => {
            // Within 2024, whole seconds half of the time so that equal instants repeat.
            let micros = 1_704_067_200_000_000 + rng.random_range(0..31_536_000_000_000i64);
            timestamp_lit(if rng.random_bool(0.5) { micros / 1_000_000 * 1_000_000 } else { micros })
        }
        Kind::Bool => {
            let v = rng.random_bool(0.5);
            Lit { gql: json!(v), sql: v.to_string() }
        }
    }
}

type Data = Vec<Vec<Option<Lit>>>;

fn random_row(rng: &mut StdRng, id: i64) -> Vec<Option<Lit>> {
    COLS.iter()
        .map(|c| match c.kind {
            _ if c.sql == "id" => Some(Lit { gql: json!(id.to_string()), sql: id.to_string() }),
            // Few distinct groups, so groups are large and grouping on them is meaningful.
            Kind::Text if c.sql == "grp" => (!rng.random_bool(0.1))
                .then(|| GROUPS[rng.random_range(0..GROUPS.len())])
                .map(|g| Lit { gql: Json::String(g.into()), sql: sql_text(g) }),
            kind => (!rng.random_bool(0.12)).then(|| random_value(rng, kind, false)),
        })
        .collect()
}

fn insert_sql(rows: &[Vec<Option<Lit>>]) -> String {
    let mut sql = String::from("INSERT INTO fuzz VALUES ");
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        for (j, cell) in row.iter().enumerate() {
            if j > 0 {
                sql.push(',');
            }
            sql.push_str(cell.as_ref().map_or("NULL", |l| l.sql.as_str()));
        }
        sql.push(')');
    }
    sql
}

// ---------------------------------------------------------------------------------------------
// Random filters, orders, pages

/// A literal for column `c`: half the time a value some row holds, so equality hits.
fn literal(rng: &mut StdRng, data: &Data, c: usize) -> Lit {
    if rng.random_bool(0.5) {
        let row = &data[rng.random_range(0..data.len())];
        if let Some(lit) = &row[c]
            && !(COLS[c].kind == Kind::Float8 && lit.gql.is_string())
        {
            return lit.clone();
        }
    }
    random_value(rng, COLS[c].kind, true)
}

fn random_pattern(rng: &mut StdRng) -> String {
    let len = rng.random_range(0..5);
    let mut p = String::new();
    for _ in 0..len {
        match rng.random_range(0..10) {
            0 | 1 => p.push('%'),
            2 => p.push('_'),
            3 => p.push_str(["\\%", "\\_", "\\\\", "\\a"][rng.random_range(0..4)]),
            _ => p.push_str(LETTERS[rng.random_range(0..LETTERS.len() - 3)]),
        }
    }
    p
}

fn array_sql(kind: Kind, items: &[Lit]) -> String {
    let ty = match kind {
        Kind::Int4 => "int4",
        Kind::Int8 => "int8",
        Kind::Numeric => "numeric",
        Kind::Float8 => "float8",
        Kind::Text => "text",
        Kind::TimestampTz => "timestamptz",
        Kind::Bool => "bool",
    };
    let items: Vec<&str> = items.iter().map(|l| l.sql.as_str()).collect();
    format!("ARRAY[{}]::{ty}[]", items.join(","))
}

/// One column condition: the GraphQL operator object's entry and the SQL it means.
fn comparison(rng: &mut StdRng, data: &Data, c: usize) -> (String, Json, String) {
    let col = &COLS[c];
    let ops: &[&str] = match col.kind {
        Kind::Text => &["eq", "neq", "gt", "gte", "lt", "lte", "in", "nin", "like", "ilike", "isNull"],
        _ => &["eq", "neq", "gt", "gte", "lt", "lte", "in", "nin", "isNull"],
    };
    let op = ops[rng.random_range(0..ops.len())];
    let sql_op = |o: &str| match o {
        "eq" => "=",
        "neq" => "<>",
        "gt" => ">",
        "gte" => ">=",
        "lt" => "<",
        _ => "<=",
    };
    match op {
        "in" | "nin" => {
            let items: Vec<Lit> = (0..rng.random_range(0..4)).map(|_| literal(rng, data, c)).collect();
            let gql = Json::Array(items.iter().map(|l| l.gql.clone()).collect());
            let array = array_sql(col.kind, &items);
            // = ANY / <> ALL give SQL's answers for empty lists too (false / true).
            let sql =
                if op == "in" { format!("{} = ANY({array})", col.sql) } else { format!("{} <> ALL({array})", col.sql) };
            (op.into(), gql, sql)
        }
        "like" | "ilike" => {
            let p = random_pattern(rng);
            let sql = format!("{} {} {}", col.sql, if op == "like" { "LIKE" } else { "ILIKE" }, sql_text(&p));
            (op.into(), Json::String(p), sql)
        }
        "isNull" => {
            let is_null = rng.random_bool(0.5);
            (op.into(), json!(is_null), format!("{} IS {}NULL", col.sql, if is_null { "" } else { "NOT " }))
        }
        _ => {
            let lit = literal(rng, data, c);
            let sql = format!("{} {} {}", col.sql, sql_op(op), lit.sql);
            (op.into(), lit.gql, sql)
        }
    }
}

/// A random `where` and the SQL condition it means.
fn random_where(rng: &mut StdRng, data: &Data, depth: u32) -> (Json, String) {
    let choice = if depth == 0 { 0 } else { rng.random_range(0..7) };
    match choice {
        4 => {
            let parts: Vec<(Json, String)> =
                (0..rng.random_range(1..4)).map(|_| random_where(rng, data, depth - 1)).collect();
            let sql = parts.iter().map(|(_, s)| format!("({s})")).collect::<Vec<_>>().join(" AND ");
            (json!({ "and": parts.into_iter().map(|(g, _)| g).collect::<Vec<_>>() }), sql)
        }
        5 => {
            let parts: Vec<(Json, String)> =
                (0..rng.random_range(1..4)).map(|_| random_where(rng, data, depth - 1)).collect();
            let sql = parts.iter().map(|(_, s)| format!("({s})")).collect::<Vec<_>>().join(" OR ");
            (json!({ "or": parts.into_iter().map(|(g, _)| g).collect::<Vec<_>>() }), sql)
        }
        6 => {
            let (g, s) = random_where(rng, data, depth - 1);
            (json!({ "not": g }), format!("NOT ({s})"))
        }
        _ => {
            // One column, one or two operators (the keys of one object must all hold).
            let c = rng.random_range(0..COLS.len());
            let mut ops = serde_json::Map::new();
            let mut sql = Vec::new();
            for _ in 0..rng.random_range(1..3) {
                let (op, value, s) = comparison(rng, data, c);
                if ops.insert(op, value).is_none() {
                    sql.push(format!("({s})"));
                } else {
                    // The later operator replaced the earlier one: keep only its SQL.
                    sql.pop();
                    sql.push(format!("({s})"));
                }
            }
            let mut object = serde_json::Map::new();
            object.insert(COLS[c].gql.into(), Json::Object(ops));
            (Json::Object(object), sql.join(" AND "))
        }
    }
}

const DIRECTIONS: [(&str, &str); 6] = [
    ("ASC", "ASC NULLS LAST"),
    ("ASC_NULLS_FIRST", "ASC NULLS FIRST"),
    ("ASC_NULLS_LAST", "ASC NULLS LAST"),
    ("DESC", "DESC NULLS FIRST"),
    ("DESC_NULLS_FIRST", "DESC NULLS FIRST"),
    ("DESC_NULLS_LAST", "DESC NULLS LAST"),
];

fn random_order(rng: &mut StdRng) -> (Json, String) {
    let mut gql = Vec::new();
    let mut sql = Vec::new();
    for _ in 0..rng.random_range(0..3) {
        let c = rng.random_range(1..COLS.len());
        let (g, s) = DIRECTIONS[rng.random_range(0..DIRECTIONS.len())];
        gql.push(json!({ COLS[c].gql: g }));
        // Qualified: the select list's `(id)::text` is also called `id`, and ORDER BY would
        // take the output column (sorting numbers as text).
        sql.push(format!("fuzz.{} {s}", COLS[c].sql));
    }
    // Ties are broken by primary key, ascending.
    sql.push("fuzz.id ASC".into());
    (Json::Array(gql), sql.join(", "))
}

// ---------------------------------------------------------------------------------------------
// Answers, made comparable

#[derive(Clone, Debug)]
enum Cell {
    Null,
    Exact(String),
    Float(f64),
}

fn parse_float(s: &str) -> f64 {
    s.parse().unwrap_or_else(|e| panic!("not a float {s:?}: {e}"))
}

/// A GraphQL value of a column of `kind` as a cell.
fn gql_cell(kind: Kind, v: &Json) -> Cell {
    match (kind, v) {
        (_, Json::Null) => Cell::Null,
        (Kind::Float8, Json::Number(n)) => Cell::Float(n.as_f64().expect("a float")),
        (Kind::Float8, Json::String(s)) => Cell::Float(parse_float(s)),
        (Kind::TimestampTz, Json::String(s)) => Cell::Exact(
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap_or_else(|e| panic!("not a timestamp {s:?}: {e}"))
                .timestamp_micros()
                .to_string(),
        ),
        (_, Json::String(s)) => Cell::Exact(s.clone()),
        (_, other) => Cell::Exact(other.to_string()),
    }
}

/// A SQL text value of a column of `kind` as a cell (timestamps are selected as epoch µs).
fn sql_cell(kind: Kind, v: Option<String>) -> Cell {
    match (kind, v) {
        (_, None) => Cell::Null,
        (Kind::Float8, Some(s)) => Cell::Float(parse_float(&s)),
        (_, Some(s)) => Cell::Exact(s),
    }
}

/// SQL that selects a column as the text `sql_cell` reads.
fn sql_select(kind: Kind, expr: &str) -> String {
    match kind {
        Kind::TimestampTz => format!("(extract(epoch from {expr}) * 1000000)::bigint::text"),
        _ => format!("({expr})::text"),
    }
}

fn same_exactly(a: &Cell, b: &Cell) -> bool {
    match (a, b) {
        (Cell::Null, Cell::Null) => true,
        (Cell::Exact(x), Cell::Exact(y)) => x == y,
        (Cell::Float(x), Cell::Float(y)) => (x.is_nan() && y.is_nan()) || x == y,
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// The server

struct Setup {
    pg: PgServer,
    serve: Serve,
    addr: SocketAddr,
    token: String,
    data: Data,
    rng: StdRng,
    seed: u64,
    _dir: tempfile::TempDir,
}

fn seed() -> u64 {
    std::env::var("GRAPHQL_VS_SQL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    })
}

fn write_config(dir: &Path, url: &str) -> std::path::PathBuf {
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, "[roles.admin]\nall_tables = true\n").expect("write policy");
    let mut text =
        format!("policy = {:?}\n\n[auth]\nhs256_secret = {SECRET:?}\n\n", policy.to_str().expect("utf-8 path"));
    let _ = write!(
        text,
        "[sources.shop]\nkind = \"postgres\"\nurl = \"{url}\"\n[[sources.shop.tables]]\ntable = \"fuzz\"\n"
    );
    let _ = writeln!(text, "indexes = {:?}", INDEXES);
    let path = dir.join("opslive.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

async fn start() -> Setup {
    let seed = seed();
    eprintln!("graphql_vs_sql: seed {seed} (GRAPHQL_VS_SQL_SEED={seed} replays this run)");
    let mut rng = StdRng::seed_from_u64(seed);
    let pg = PgServer::start().await;
    let url = pg.create_database("shop").await;
    let client = pg.connect("shop").await;
    client.batch_execute(CREATE).await.expect("create table");
    let data: Data = (1..=ROWS).map(|id| random_row(&mut rng, id)).collect();
    for chunk in data.chunks(500) {
        client.batch_execute(&insert_sql(chunk)).await.expect("insert rows");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &url);
    let mut serve = Serve::start(&config);
    let addr = serve.wait_listening().await;
    serve.wait_log("replica consistent", |_| {}).await;
    let token = token("admin", json!({}));
    let setup = Setup { pg, serve, addr, token, data, rng, seed, _dir: dir };
    // The replica is consistent; its version reaches the API right after.
    wait_until(&setup, "fuzzByKey(id: \"1\") { id }", |d| !d["fuzzByKey"].is_null()).await;
    setup
}

/// Asks `query` until the answer satisfies `done` (no errors), for at most 30 s.
async fn wait_until(setup: &Setup, query: &str, done: impl Fn(&Json) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let answer = post(setup.addr, Some(&setup.token), &format!("{{ {query} }}"), json!({})).await.json();
        if answer.get("errors").is_none() && done(&answer["data"]) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "no answer to {query} within 30 s; last: {answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn graphql(setup: &Setup, query: &str, variables: Json) -> Json {
    let answer = post(setup.addr, Some(&setup.token), query, variables.clone()).await.json();
    if let Some(errors) = answer.get("errors") {
        panic!("seed {}: GraphQL errors {errors}\nquery: {query}\nvariables: {variables}", setup.seed);
    }
    answer["data"].clone()
}

async fn sql_rows(client: &tokio_postgres::Client, sql: &str, seed: u64) -> Vec<Vec<Option<String>>> {
    let rows = client.query(sql, &[]).await.unwrap_or_else(|e| {
        let detail = e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string());
        panic!("seed {seed}: SQL failed: {detail}\n{sql}")
    });
    rows.iter().map(|r| (0..r.len()).map(|i| r.get::<_, Option<String>>(i)).collect()).collect()
}

// ---------------------------------------------------------------------------------------------
// The comparisons

const ROW_QUERY: &str = "query($w: FuzzBoolExp, $o: [FuzzOrderBy!], $l: Int, $f: Int) {
    fuzz(where: $w, orderBy: $o, limit: $l, offset: $f) { id grp qty bigNum amount score label seenAt flag }
}";

/// Runs `n` random row queries and compares each with SQL; returns how many rows were compared.
async fn compare_rows(setup: &mut Setup, client: &tokio_postgres::Client, n: usize) -> usize {
    let columns: Vec<String> = COLS.iter().map(|c| sql_select(c.kind, c.sql)).collect();
    let mut compared = 0;
    for _ in 0..n {
        let (w, where_sql) = random_where(&mut setup.rng, &setup.data, 3);
        let (o, order_sql) = random_order(&mut setup.rng);
        let limit = setup.rng.random_bool(0.7).then(|| setup.rng.random_range(0..60));
        let offset = if setup.rng.random_bool(0.5) { setup.rng.random_range(0..200) } else { 0 };
        let mut sql = format!("SELECT {} FROM fuzz WHERE {where_sql} ORDER BY {order_sql}", columns.join(", "));
        if let Some(l) = limit {
            let _ = write!(sql, " LIMIT {l}");
        }
        let _ = write!(sql, " OFFSET {offset}");
        let variables = json!({ "w": w, "o": o, "l": limit, "f": offset });
        let got = graphql(setup, ROW_QUERY, variables.clone()).await;
        let got = got["fuzz"].as_array().cloned().unwrap_or_default();
        let want = sql_rows(client, &sql, setup.seed).await;
        let context = || format!("seed {}\nvariables: {variables}\nsql: {sql}", setup.seed);
        assert_eq!(got.len(), want.len(), "row count differs\n{}", context());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            if g["id"].as_str() != w[0].as_deref() {
                // Show the source's version of the row GraphQL put here, to tell a wrong order
                // from a replica that differs from its source.
                let id = g["id"].as_str().unwrap_or("0");
                let source =
                    sql_rows(client, &format!("SELECT {} FROM fuzz WHERE id = {id}", columns.join(", ")), setup.seed)
                        .await;
                panic!("row {i}: GraphQL has {g}, SQL has {w:?}\nthe source's row {id}: {source:?}\n{}", context());
            }
            for (c, col) in COLS.iter().enumerate() {
                let (a, b) = (gql_cell(col.kind, &g[col.gql]), sql_cell(col.kind, w[c].clone()));
                assert!(
                    same_exactly(&a, &b),
                    "row {i} column {}: GraphQL {a:?}, SQL {b:?}\nGraphQL row: {g}\nSQL row: {w:?}\n{}",
                    col.sql,
                    context()
                );
            }
        }
        compared += got.len();
    }
    compared
}

/// Measures asked for in every aggregate query: (function, column).
const MEASURES: [(&str, &str); 43] = [
    ("sum", "qty"),
    ("sum", "big_num"),
    ("sum", "amount"),
    ("sum", "score"),
    ("avg", "qty"),
    ("avg", "big_num"),
    ("avg", "amount"),
    ("avg", "score"),
    ("min", "qty"),
    ("min", "big_num"),
    ("min", "amount"),
    ("min", "score"),
    ("min", "label"),
    ("min", "seen_at"),
    ("max", "qty"),
    ("max", "big_num"),
    ("max", "amount"),
    ("max", "score"),
    ("max", "label"),
    ("max", "seen_at"),
    ("countDistinct", "grp"),
    ("countDistinct", "qty"),
    ("countDistinct", "amount"),
    ("countDistinct", "score"),
    ("countDistinct", "label"),
    ("countDistinct", "seen_at"),
    ("countDistinct", "flag"),
    ("p50", "qty"),
    ("p50", "amount"),
    ("p50", "score"),
    ("p50", "label"),
    ("p50", "seen_at"),
    ("p90", "qty"),
    ("p90", "big_num"),
    ("p90", "amount"),
    ("p90", "score"),
    ("p90", "seen_at"),
    ("p95", "amount"),
    ("p95", "label"),
    ("p99", "qty"),
    ("p99", "score"),
    ("p99", "seen_at"),
    ("p99", "big_num"),
];

/// The GraphQL group fields, in the order they are selected.
const FUNCTIONS: [&str; 9] = ["sum", "avg", "min", "max", "countDistinct", "p50", "p90", "p95", "p99"];

/// The SQL of a measure.
fn sql_measure(f: &str, c: &str) -> String {
    match f {
        "countDistinct" => format!("count(DISTINCT {c})"),
        "p50" | "p90" | "p95" | "p99" => {
            format!("percentile_disc(0.{}) WITHIN GROUP (ORDER BY {c})", &f[1..])
        }
        _ => format!("{f}({c})"),
    }
}

/// The kind of a measure's value: a count is an integer, the others have their column's kind.
fn measure_kind(f: &str, c: &str) -> Kind {
    if f == "countDistinct" { Kind::Int8 } else { col(c).kind }
}

const GROUP_COLUMNS: [(usize, &str); 3] = [(1, "GRP"), (8, "FLAG"), (2, "QTY")];

fn col(sql: &str) -> &'static Col {
    COLS.iter().find(|c| c.sql == sql).expect("a column")
}

/// Runs `n` random aggregate queries and compares each group with SQL; returns the groups
/// compared.
async fn compare_aggregates(setup: &mut Setup, client: &tokio_postgres::Client, n: usize) -> usize {
    let mut selection = String::from("key { grp flag qty } count");
    for f in FUNCTIONS {
        let fields: Vec<&str> = MEASURES.iter().filter(|(g, _)| *g == f).map(|(_, c)| col(c).gql).collect();
        let _ = write!(selection, " {f} {{ {} }}", fields.join(" "));
    }
    let query = format!(
        "query($w: FuzzBoolExp, $g: [FuzzColumn!]) {{ fuzzAggregate(where: $w, groupBy: $g) {{ {selection} }} }}"
    );
    let mut compared = 0;
    for _ in 0..n {
        let (w, where_sql) = random_where(&mut setup.rng, &setup.data, 3);
        let mut group: Vec<(usize, &str)> =
            GROUP_COLUMNS.iter().copied().filter(|_| setup.rng.random_bool(0.4)).collect();
        if group.len() == 3 {
            group.pop();
        }
        let group_sql: Vec<String> = group.iter().map(|(c, _)| format!("fuzz.{}", COLS[*c].sql)).collect();
        let mut select: Vec<String> = group.iter().map(|(c, _)| sql_select(COLS[*c].kind, COLS[*c].sql)).collect();
        select.push("count(*)::text".into());
        for (f, c) in MEASURES {
            select.push(sql_select(measure_kind(f, c), &sql_measure(f, c)));
        }
        select.push("sum(abs(score))::text".into());
        select.push("count(score)::text".into());
        let mut sql = format!("SELECT {} FROM fuzz WHERE {where_sql}", select.join(", "));
        if !group_sql.is_empty() {
            let _ = write!(sql, " GROUP BY {}", group_sql.join(", "));
        }
        let variables = json!({ "w": w, "g": group.iter().map(|(_, e)| *e).collect::<Vec<_>>() });
        let context = || format!("seed {}\nvariables: {variables}\nsql: {sql}", setup.seed);
        let data = graphql(setup, &query, variables.clone()).await;
        let mut got: Vec<(Vec<String>, &Json)> = data["fuzzAggregate"]
            .as_array()
            .map(|groups| {
                groups
                    .iter()
                    .map(|g| {
                        let key = group
                            .iter()
                            .map(|(c, _)| format!("{:?}", gql_cell(COLS[*c].kind, &g["key"][COLS[*c].gql])));
                        (key.collect(), g)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut want: Vec<(Vec<String>, Vec<Option<String>>)> = sql_rows(client, &sql, setup.seed)
            .await
            .into_iter()
            .map(|r| {
                let key =
                    group.iter().enumerate().map(|(i, (c, _))| format!("{:?}", sql_cell(COLS[*c].kind, r[i].clone())));
                (key.collect(), r[group.len()..].to_vec())
            })
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        want.sort_by(|a, b| a.0.cmp(&b.0));
        let got_keys: Vec<&Vec<String>> = got.iter().map(|(k, _)| k).collect();
        let want_keys: Vec<&Vec<String>> = want.iter().map(|(k, _)| k).collect();
        assert_eq!(got_keys, want_keys, "groups differ\n{}", context());
        for ((key, g), (_, w)) in got.iter().zip(&want) {
            let count = w[0].clone().unwrap_or_default();
            assert_eq!(g["count"].to_string(), count, "count of group {key:?}\n{}", context());
            let sum_abs = w[MEASURES.len() + 1].as_deref().map_or(0.0, parse_float);
            let n_scores = w[MEASURES.len() + 2].as_deref().map_or(0.0, parse_float);
            for (m, (f, c)) in MEASURES.iter().enumerate() {
                let kind = measure_kind(f, c);
                let a = gql_cell(kind, &g[*f][col(c).gql]);
                let b = sql_cell(kind, w[m + 1].clone());
                let ok = match (&a, &b, *f) {
                    (Cell::Float(x), Cell::Float(y), "sum" | "avg") if x.is_finite() && y.is_finite() => {
                        // PostgreSQL's running sum is off from the exact one by at most
                        // (n-1)·ε·Σ|x|; an average divides that by n.
                        let bound = n_scores * f64::EPSILON / 2.0 * sum_abs;
                        let bound = if *f == "avg" { bound / n_scores.max(1.0) } else { bound };
                        (x - y).abs() <= bound * 2.0 + f64::MIN_POSITIVE
                    }
                    // Equal numerics may be spelled differently (1.5, 1.50); PostgreSQL's min and
                    // max return the last such value in its scan order, which a replica cannot
                    // know after rows moved, so only their value is compared.
                    // The same holds for percentile_disc: PostgreSQL's sort leaves the order of
                    // equal values undefined.
                    (Cell::Exact(x), Cell::Exact(y), "min" | "max" | "p50" | "p90" | "p95" | "p99")
                        if kind == Kind::Numeric =>
                    {
                        opslive::value::numeric_cmp(x, y) == std::cmp::Ordering::Equal
                    }
                    _ => same_exactly(&a, &b),
                };
                assert!(ok, "group {key:?}: {f}({c}) is {a:?} in GraphQL, {b:?} in SQL\n{}", context());
            }
        }
        compared += got.len();
    }
    compared
}

/// Random inserts, updates and deletes, committed in a few transactions and streamed to the
/// replica; the last one writes a marker row, so once the marker is visible all are.
async fn change_data(setup: &mut Setup, client: &tokio_postgres::Client) {
    const MARKER: i64 = 1_000_000;
    for round in 0..5 {
        let mut sql = String::from("BEGIN;");
        for _ in 0..60 {
            let id = setup.rng.random_range(1..=ROWS + 200);
            match setup.rng.random_range(0..3) {
                0 => {
                    let _ = write!(sql, "DELETE FROM fuzz WHERE id = {id};");
                }
                1 => {
                    let row = random_row(&mut setup.rng, id);
                    let _ = write!(sql, "DELETE FROM fuzz WHERE id = {id}; {};", insert_sql(&[row]));
                }
                _ => {
                    let c = setup.rng.random_range(1..COLS.len());
                    let value = random_value(&mut setup.rng, COLS[c].kind, false);
                    let _ = write!(sql, "UPDATE fuzz SET {} = {} WHERE id = {id};", COLS[c].sql, value.sql);
                }
            }
        }
        if round == 4 {
            let marker = random_row(&mut setup.rng, MARKER);
            let _ = write!(sql, "{};", insert_sql(&[marker]));
        }
        sql.push_str("COMMIT;");
        client.batch_execute(&sql).await.unwrap_or_else(|e| panic!("seed {}: changes failed: {e}", setup.seed));
    }
    wait_until(setup, &format!("fuzzByKey(id: \"{MARKER}\") {{ id }}"), |d| !d["fuzzByKey"].is_null()).await;
    // Literals keep coming from rows that existed at some point, which is all they are for.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_orders_and_pages_match_sql() {
    let mut setup = start().await;
    let client = setup.pg.connect("shop").await;
    let started = std::time::Instant::now();
    let rows = compare_rows(&mut setup, &client, 400).await;
    eprintln!("compared 400 row queries ({rows} rows) in {:?}", started.elapsed());
    // Not every query may come back empty: the generator must hit rows.
    assert!(rows > 400, "the random filters matched almost nothing ({rows} rows): the test would prove little");
    setup.serve.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_match_sql_before_and_after_streamed_changes() {
    let mut setup = start().await;
    let client = setup.pg.connect("shop").await;
    let started = std::time::Instant::now();
    let before = compare_aggregates(&mut setup, &client, 150).await;
    change_data(&mut setup, &client).await;
    let after = compare_aggregates(&mut setup, &client, 100).await;
    let rows = compare_rows(&mut setup, &client, 100).await;
    eprintln!(
        "compared {before} groups, then after changes {after} groups and {rows} rows, in {:?}",
        started.elapsed()
    );
    assert!(before > 150 && after > 100, "too few groups compared: {before}, {after}");
    setup.serve.terminate().await;
}
