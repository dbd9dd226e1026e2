//! Binary tuples (`binary 'true'`): each type's binary form reads as the same value as its text
//! form, on a real PostgreSQL; a stream of every type gives the same replica in either form;
//! a source whose tables have a type without a binary reader stays on text and says why, and
//! one such table joining a binary stream restarts it in text.

mod support;

use std::sync::atomic::Ordering;

use opslive::registry::ColumnType;
use opslive::source::postgres::{binary, text};
use opslive::value::Value;
use support::PgServer;
use support::pipeline::{assert_same, assert_same_spelling, source_rows, start_configured, start_with_binary};

/// One SQL type: its send function, how opslive types it, and literals of edge values.
struct Case {
    sql_type: &'static str,
    send: &'static str,
    ty: ColumnType,
    values: &'static [&'static str],
}

fn array(element: ColumnType) -> ColumnType {
    ColumnType::Array(Box::new(element))
}

fn cases() -> Vec<Case> {
    use ColumnType::*;
    vec![
        Case { sql_type: "bool", send: "boolsend", ty: Bool, values: &["true", "false"] },
        Case { sql_type: "int2", send: "int2send", ty: Int2, values: &["-32768", "32767", "0"] },
        Case { sql_type: "int4", send: "int4send", ty: Int4, values: &["-2147483648", "2147483647"] },
        Case { sql_type: "int8", send: "int8send", ty: Int8, values: &["-9223372036854775808", "9223372036854775807"] },
        Case { sql_type: "oid", send: "oidsend", ty: Int8, values: &["0", "4294967295"] },
        Case { sql_type: "xid", send: "xidsend", ty: Int8, values: &["3", "4294967295"] },
        Case {
            sql_type: "float4",
            send: "float4send",
            ty: Float4,
            values: &["1.1", "-0", "NaN", "Infinity", "-Infinity", "3.4028235e38", "1e-45", "0.1"],
        },
        Case {
            sql_type: "float8",
            send: "float8send",
            ty: Float8,
            values: &["0.1", "-0", "NaN", "-Infinity", "1.7976931348623157e308", "5e-324", "1e22"],
        },
        Case {
            sql_type: "numeric",
            send: "numeric_send",
            ty: Numeric,
            values: &[
                "0",
                "-0.00",
                "1.50",
                "123456789012345678901234567890.000001",
                "1e-20",
                "NaN",
                "Infinity",
                "-Infinity",
                "-123.4500",
                "10000",
                "0.0001",
                "99999999.99999999",
                "1e100",
                "-0.000000001",
                "12345.678",
            ],
        },
        Case { sql_type: "numeric(12,2)", send: "numeric_send", ty: Numeric, values: &["0", "-1", "1234567890.5"] },
        Case {
            sql_type: "text",
            send: "textsend",
            ty: Text,
            values: &["héllo \"wörld\"", "", "NULL", "ünï ✓ 🎉", "tab\there\nnew line\\"],
        },
        Case { sql_type: "varchar(20)", send: "varcharsend", ty: Text, values: &["varchar ✓", ""] },
        Case { sql_type: "char(5)", send: "bpcharsend", ty: Text, values: &["ab", "ünï"] },
        Case { sql_type: "name", send: "namesend", ty: Text, values: &["a_name"] },
        Case { sql_type: "\"char\"", send: "charsend", ty: Text, values: &["a", "", "\\351", "\\001"] },
        Case { sql_type: "uuid", send: "uuid_send", ty: Uuid, values: &["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"] },
        Case {
            sql_type: "date",
            send: "date_send",
            ty: Date,
            values: &[
                "2024-02-29",
                "0044-03-15 BC",
                "4713-01-01 BC",
                "infinity",
                "-infinity",
                "1970-01-01",
                "1999-12-31",
                "10000-01-01",
            ],
        },
        Case {
            sql_type: "time",
            send: "time_send",
            ty: Time,
            values: &["00:00:00", "23:59:59.999999", "24:00:00", "12:34:56.5"],
        },
        Case {
            sql_type: "timestamp",
            send: "timestamp_send",
            ty: Timestamp,
            values: &[
                "2024-02-29 12:34:56.789",
                "infinity",
                "-infinity",
                "0044-03-15 12:00:00 BC",
                "1999-12-31 23:59:59.999999",
                "2000-01-01 00:00:00",
                "1969-12-31 23:59:59.999999",
            ],
        },
        Case {
            sql_type: "timestamptz",
            send: "timestamptz_send",
            ty: TimestampTz,
            values: &[
                "2024-01-02 03:04:05.25+05:30",
                "infinity",
                "-infinity",
                "1900-01-01 00:00:00+00",
                "0001-01-01 00:00:00+00 BC",
            ],
        },
        Case {
            sql_type: "interval",
            send: "interval_send",
            ty: Interval,
            values: &[
                "1 year 2 months 3 days 04:05:06.789",
                "-1 day 2 hours",
                "0",
                "-1 year -2 months +3 days -04:05:06",
                "1 month -1 microsecond",
                "178000000 years",
                "-00:00:00.000001",
                "-178000000 years -2147483648 days",
            ],
        },
        Case {
            sql_type: "json",
            send: "json_send",
            ty: Json,
            values: &["{\"a\": [1, 2.50], \"b\": null}", "\"str\"", "[]", "  {\"sp\" :  1}  "],
        },
        Case {
            sql_type: "jsonb",
            send: "jsonb_send",
            ty: Json,
            values: &[
                "{\"a\": {\"b\": [1, 2.5, {\"c\": null}]}, \"big\": 123456789012345678901234567890.123456789}",
                "[]",
                "\"x\"",
                "{\"ü\": \"✓\", \"n\": 1e400}",
            ],
        },
        Case { sql_type: "bytea", send: "byteasend", ty: Bytes, values: &["\\x", "\\xdeadbeef00", "\\x0000"] },
        Case {
            sql_type: "int4[]",
            send: "array_send",
            ty: array(Int4),
            values: &["{}", "{1,NULL,-3}", "{{1,2},{3,4}}", "[0:2]={7,8,9}", "{{{1},{2}},{{3},{NULL}}}"],
        },
        Case {
            sql_type: "text[]",
            send: "array_send",
            ty: array(Text),
            values: &[
                r#"{plain,NULL,"NULL","with \"quotes\"","a,b","{braces}","back\\slash",""," spaced ",ünï}"#,
                "{{a,b},{NULL,d}}",
                "{}",
            ],
        },
        Case { sql_type: "varchar[]", send: "array_send", ty: array(Text), values: &["{a,NULL}"] },
        Case { sql_type: "char(3)[]", send: "array_send", ty: array(Text), values: &["{a,bcd}"] },
        Case {
            sql_type: "numeric[]",
            send: "array_send",
            ty: array(Numeric),
            values: &["{1.50,NaN,-0.00,Infinity,1e-20}"],
        },
        Case { sql_type: "int8[]", send: "array_send", ty: array(Int8), values: &["{{1,2,3},{4,5,6}}"] },
        Case { sql_type: "int2[]", send: "array_send", ty: array(Int2), values: &["{-1,NULL}"] },
        Case { sql_type: "bool[]", send: "array_send", ty: array(Bool), values: &["{t,f,NULL}"] },
        Case { sql_type: "float4[]", send: "array_send", ty: array(Float4), values: &["{1.1,NaN,-0}"] },
        Case { sql_type: "float8[]", send: "array_send", ty: array(Float8), values: &["{0.1,-Infinity,NULL}"] },
        Case {
            sql_type: "timestamptz[]",
            send: "array_send",
            ty: array(TimestampTz),
            values: &["{\"2024-01-02 03:04:05+00\",infinity,NULL}"],
        },
        Case {
            sql_type: "timestamp[]",
            send: "array_send",
            ty: array(Timestamp),
            values: &["{\"2024-01-02 03:04:05.5\"}"],
        },
        Case { sql_type: "date[]", send: "array_send", ty: array(Date), values: &["{2024-01-01,-infinity}"] },
        Case { sql_type: "time[]", send: "array_send", ty: array(Time), values: &["{24:00:00,NULL}"] },
        Case { sql_type: "interval[]", send: "array_send", ty: array(Interval), values: &["{\"1 day -1 second\"}"] },
        Case {
            sql_type: "jsonb[]",
            send: "array_send",
            ty: array(Json),
            values: &[r#"{"{\"a\": 1}",NULL,"[1, 2.50]"}"#],
        },
        Case { sql_type: "json[]", send: "array_send", ty: array(Json), values: &[r#"{"{\"a\":  1}"}"#] },
        Case {
            sql_type: "uuid[]",
            send: "array_send",
            ty: array(Uuid),
            values: &["{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}"],
        },
        Case { sql_type: "bytea[]", send: "array_send", ty: array(Bytes), values: &[r#"{"\\xdead",NULL,"\\x"}"#] },
    ]
}

fn same_spelling_deep(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| same_spelling_deep(a, b))
        }
        _ => a.same_spelling(b),
    }
}

fn quote(literal: &str) -> String {
    format!("'{}'", literal.replace('\'', "''"))
}

/// `SELECT` the text form (the type's output function, as pgoutput's text tuples and COPY
/// print it) and the binary form (its send function, as binary tuples carry it) of each value:
/// opslive must read both as the same value, spelled alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_form_reads_as_the_text_form_for_every_type() {
    let pg = PgServer::start().await;
    pg.create_database("forms").await;
    let sql = pg.connect("forms").await;
    // The settings every source connection pins (text::PINNED_OPTIONS).
    sql.batch_execute(
        "SET DateStyle = 'ISO, YMD'; SET IntervalStyle = iso_8601; SET TimeZone = 'UTC'; \
         SET extra_float_digits = 3; SET bytea_output = hex",
    )
    .await
    .unwrap();
    let mut checked = 0;
    for case in cases() {
        for literal in case.values {
            // format('%s') prints through the type's output function (a cast to text would not:
            // char(n)::text drops the padding).
            let query = format!(
                "SELECT format('%s', v), encode({send}(v), 'hex') FROM (VALUES ({lit}::{ty})) t(v)",
                send = case.send,
                lit = quote(literal),
                ty = case.sql_type
            );
            let rows = sql.simple_query(&query).await.unwrap_or_else(|e| panic!("{query}: {e}"));
            let row = rows
                .iter()
                .find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
                    _ => None,
                })
                .expect("one row");
            let text_form = row.get(0).expect("not NULL");
            let bytes = hex::decode(row.get(1).expect("not NULL")).expect("hex");
            let what = format!("{} {literal:?} (text form {text_form:?})", case.sql_type);
            let from_text = text::parse(&case.ty, text_form).unwrap_or_else(|e| panic!("{what}: text: {e}"));
            let from_binary = binary::parse(&case.ty, &bytes).unwrap_or_else(|e| panic!("{what}: binary: {e}"));
            assert!(same_spelling_deep(&from_binary, &from_text), "{what}: {from_binary:?} != {from_text:?}");
            assert_eq!(
                serde_json::to_string(&from_binary).unwrap(),
                serde_json::to_string(&from_text).unwrap(),
                "{what}: canonical JSON"
            );
            assert!(binary::supported(&case.ty), "{what}");
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked} values checked");
}

/// One column of each type opslive reads from binary, a domain among them.
const KINDS: &str = r#"
CREATE DOMAIN positive AS int CHECK (VALUE > 0);
CREATE TABLE kinds (
    id int PRIMARY KEY, b bool, i2 int2, i4 int4, i8 int8, o oid, x xid, f4 float4, f8 float8,
    n numeric, n2 numeric(10,3), t text, vc varchar(20), ch char(3), nm name, c "char", u uuid,
    d date, tm time, ts timestamp, tstz timestamptz, iv interval, j json, jb jsonb, by bytea,
    ia int4[], ta text[], na numeric[], m2 int8[], tsa timestamptz[], jba jsonb[], dom positive
);
"#;

/// Rows `from..from+8` of edge values; row `from` is all NULLs but its key.
fn kinds_rows(from: i32) -> String {
    let mut sql = format!("INSERT INTO kinds (id) VALUES ({from});");
    let rows = [
        r#"true, -32768, 2147483647, '9223372036854775807', 4294967295, '4294967295', '1.1', '0.1',
           '123456789012345678901234567890.000001', '-0.000', 'héllo "wörld"', 'varchar ✓', 'ab', 'a_name', 'a',
           'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '0044-03-15 BC', '24:00:00', '2024-02-29 12:34:56.789',
           '2024-01-02 03:04:05.25+05:30', '1 year 2 months 3 days 04:05:06.789', '{"a": [1, 2.50]}',
           '{"a": {"b": [1, 2.5, null]}, "big": 123456789012345678901234567890.123456789}', '\xdeadbeef00',
           '{1,NULL,-3}', '{plain,NULL,"NULL","a,b",ünï}', '{1.50,NaN,-0.00}', '{{1,2},{3,4}}',
           '{"2024-01-02 03:04:05+00",infinity}', ARRAY['{"a": 1}'::jsonb, NULL], 7"#,
        r#"false, 32767, -2147483648, '-9223372036854775808', 0, '3', 'NaN', '-Infinity', 'NaN', '1.500', '',
           '', 'xyz', '', '', '00000000-0000-0000-0000-000000000000', 'infinity', '00:00:00', '-infinity',
           'infinity', '-1 year -2 months +3 days -04:05:06', '[]', '[]', '\x', '{}', '{}', '{}', '{}', '{}',
           '{}', 1"#,
        r#"NULL, 0, 0, 0, 0, '0', '-0', '-0', 'Infinity', '99999.999', 'ünï ✓ 🎉', 'x', 'ünï', 'n', '\351',
           'ffffffff-ffff-ffff-ffff-ffffffffffff', '-infinity', '23:59:59.999999', 'infinity', '-infinity',
           '1 month -1 microsecond', '  {"sp" :  1}  ', '{"ü": "✓", "n": 1e400}', '\x0000', '{{1},{NULL}}',
           '{{a,b},{NULL,d}}', '{Infinity,-Infinity}', '{{{1}}}', '{NULL}', '{NULL}', 2147483647"#,
        r#"true, 1, 1, 1, 1, '1', '3.4028235e38', '1.7976931348623157e308', '-Infinity', '-0.001', 'NULL', 'NULL',
           '', 'NULL', '', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1970-01-01', '12:34:56.5',
           '1999-12-31 23:59:59.999999', '1900-01-01 00:00:00+00', '-00:00:00.000001', '"str"', '"x"', '\x00',
           '[0:2]={7,8,9}', '{""," spaced "}', '{1e-20}', '{{-9223372036854775808}}', '{-infinity}', '{}', 3"#,
        r#"false, -1, -1, -1, 4294967294, '4294967294', '1e-45', '5e-324', '1e-20', '0', 'tab	here
new line\', 'v', 'a  ', 'z', '\001', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '4713-01-01 BC', '00:00:00.000001',
           '0044-03-15 12:00:00 BC', '0001-01-01 00:00:00+00 BC', '178000000 years', 'null', 'null', '\xff',
           '{-2147483648}', '{"with \"quotes\"","{braces}","back\\slash"}', '{0.0001,10000}', '{}', '{}', '{}', 5"#,
    ];
    for (i, values) in rows.iter().enumerate() {
        sql.push_str(&format!(
            "INSERT INTO kinds (id, b, i2, i4, i8, o, x, f4, f8, n, n2, t, vc, ch, nm, c, u, d, tm, ts, tstz, iv, j, jb, \
             by, ia, ta, na, m2, tsa, jba, dom) VALUES ({}, {values});",
            from + 1 + i as i32
        ));
    }
    sql
}

/// The streamed path for every type, in binary and in text: rows copied by the snapshot and
/// rows streamed (inserted, updated, deleted) give the same replica as the source, spelled
/// alike, in both modes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_streams_alike_in_binary_and_in_text() {
    let pg = PgServer::start().await;
    let url = pg.create_database("kinds").await;
    let sql = pg.connect("kinds").await;
    sql.batch_execute(KINDS).await.unwrap();
    sql.batch_execute(&kinds_rows(0)).await.unwrap();
    for binary in [true, false] {
        let slot = if binary { "kinds_bin" } else { "kinds_text" };
        let mut running = start_with_binary(&url, slot, &["kinds"], binary);
        let id = running.table_id("kinds");
        running.wait_for("the snapshot", |r| r.table(id).is_some_and(|t| t.state.is_ready())).await;
        assert_eq!(running.stats.binary_tuples.load(Ordering::Relaxed), binary);
        // Streamed: new rows, an update of every column (new values come whole), a delete.
        let base = if binary { 100 } else { 200 };
        sql.batch_execute(&kinds_rows(base)).await.unwrap();
        sql.batch_execute(&format!(
            "UPDATE kinds k SET (b, i2, i4, i8, o, x, f4, f8, n, n2, t, vc, ch, nm, c, u, d, tm, ts, tstz, iv, j, jb, by, \
             ia, ta, na, m2, tsa, jba, dom) = (SELECT b, i2, i4, i8, o, x, f4, f8, n, n2, t, vc, ch, nm, c, u, d, tm, ts, \
             tstz, iv, j, jb, by, ia, ta, na, m2, tsa, jba, dom FROM kinds WHERE id = k.id % 100 + {base} + 1) \
             WHERE id BETWEEN {base} + 1 AND {base} + 3;
             DELETE FROM kinds WHERE id = {base} + 5;
             INSERT INTO kinds (id) VALUES ({base} + 99);"
        ))
        .await
        .unwrap();
        let marker = opslive::change::Key(vec![Value::Int4(base + 99)].into());
        let replica =
            running.wait_for("the streamed rows", |r| r.table(id).is_some_and(|t| t.get(&marker).is_some())).await;
        let expected = source_rows(&sql, &replica, id).await;
        assert_same(&replica, id, &expected);
        assert_same_spelling(&replica, id, &expected);
        assert!(running.seen.lock().unwrap().anomalies.is_empty());
        running.stop().await;
    }
}

/// A `[sources.src]` TOML for `tables` of the database at `url`.
fn source_toml(url: &str, binary: bool, tables: &[&str]) -> String {
    let mut toml = format!("kind = \"postgres\"\nurl = \"{url}\"\nheartbeat_seconds = 0\nbinary = {binary}\n");
    for t in tables {
        toml.push_str(&format!("[[sources.src.tables]]\ntable = \"{t}\"\n"));
    }
    toml
}

/// A watched column of a type opslive has no binary reader for (`inet`) keeps the source on
/// text, and `serve`'s log says which column; the rows are read all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_type_keeps_the_source_on_text_and_the_log_says_why() {
    let pg = PgServer::start().await;
    let url = pg.create_database("shop").await;
    let sql = pg.connect("shop").await;
    sql.batch_execute(
        "CREATE TABLE hosts (id int PRIMARY KEY, addr inet, seen timestamptz);
         INSERT INTO hosts VALUES (1, '10.0.0.1', '2024-01-01 00:00:00+00');",
    )
    .await
    .unwrap();
    let dir = support::private_tempdir("binary-fallback");
    let config = dir.path().join("opslive.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[sources.shop]\nkind = \"postgres\"\nurl = \"{url}\"\nbinary = true\n\
             [[sources.shop.tables]]\ntable = \"hosts\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut serve = support::serve::Serve::start(&config);
    // The source logs both, in this order, at its start.
    let why = serve.wait_log("binary tuples were asked for; streaming text instead", |_| {}).await;
    assert_eq!(
        why["fields"]["reason"], "column public.hosts.addr is of type inet, which has no binary reader",
        "{why}"
    );
    let streaming = serve.wait_log("streaming changes", |_| {}).await;
    assert_eq!(streaming["fields"]["tuples"], "text", "{streaming}");

    // In-process, the same source reads its rows (in text).
    let mut running = start_configured(&source_toml(&url, true, &["hosts"]), None);
    let id = running.table_id("hosts");
    let replica = running.wait_for("the snapshot", |r| r.table(id).is_some_and(|t| t.state.is_ready())).await;
    assert!(!running.stats.binary_tuples.load(Ordering::Relaxed));
    let expected = source_rows(&sql, &replica, id).await;
    assert_eq!(expected.len(), 1);
    assert_same(&replica, id, &expected);
    running.stop().await;
}

/// A table that joins a binary stream (added to the configuration) with a type that has no
/// binary reader: the session starts again in text, the table is copied, and no change of
/// either table is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_joining_a_binary_stream_with_an_unknown_type_restarts_it_in_text() {
    let pg = PgServer::start().await;
    let url = pg.create_database("shop").await;
    let sql = pg.connect("shop").await;
    sql.batch_execute(
        "CREATE TABLE orders (id int PRIMARY KEY, amount numeric);
         INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 100) g;
         CREATE TABLE hosts (id int PRIMARY KEY, addr inet);
         INSERT INTO hosts SELECT g, ('10.0.0.' || g)::inet FROM generate_series(1, 50) g;",
    )
    .await
    .unwrap();
    let mut running = start_configured(&source_toml(&url, true, &["orders"]), None);
    let orders = running.table_id("orders");
    running.wait_for("orders", |r| r.table(orders).is_some_and(|t| t.state.is_ready())).await;
    assert!(running.stats.binary_tuples.load(Ordering::Relaxed), "streams binary while it can");
    sql.batch_execute("INSERT INTO orders VALUES (101, 0.10)").await.unwrap();

    // As reconfiguration adds a table: registered, then copied on its own.
    let hosts = running.registry.add("src".into(), "public", "hosts", "hosts", vec![], vec![]).unwrap();
    running.requests.request(hosts, "added to the configuration".into());
    sql.batch_execute("INSERT INTO hosts VALUES (51, '::1'); INSERT INTO orders VALUES (102, 1e-20)").await.unwrap();
    let marker = opslive::change::Key(vec![Value::Int4(52)].into());
    sql.batch_execute("INSERT INTO hosts VALUES (52, '10.1.1.1/16'); INSERT INTO orders VALUES (103, 'NaN')")
        .await
        .unwrap();
    let replica = running
        .wait_for("hosts copied and caught up", |r| {
            r.table(hosts).is_some_and(|t| t.state.is_ready() && t.get(&marker).is_some())
        })
        .await;
    assert!(!running.stats.binary_tuples.load(Ordering::Relaxed), "the session streams text now");
    let error = running.stats.last_error().unwrap_or_default();
    assert!(
        error.contains("column public.hosts.addr is of type inet, which has no binary reader")
            && error.contains("starts again in text form"),
        "{error}"
    );
    let order_marker = opslive::change::Key(vec![Value::Int4(103)].into());
    let replica = if replica.table(orders).is_some_and(|t| t.get(&order_marker).is_some()) {
        replica
    } else {
        running.wait_for("orders caught up", |r| r.table(orders).is_some_and(|t| t.get(&order_marker).is_some())).await
    };
    for id in [orders, hosts] {
        let expected = source_rows(&sql, &replica, id).await;
        assert_same(&replica, id, &expected);
        assert_same_spelling(&replica, id, &expected);
    }
    assert!(running.seen.lock().unwrap().anomalies.is_empty());
    running.stop().await;
}
