//! Role isolation through the real server: thousands of random rows, a token for every fixture
//! role, and for each role a check that it gets exactly its share — the tables, columns and rows
//! the fixture policy grants, compared with the same selection run in SQL — and that nothing
//! else comes back through rows, keys, filters, ordering, grouping or aggregates.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value as Json, json};
use support::graphql::{Shop, data, fixture_policy, post, token};

/// Columns a role sees of one table, by GraphQL name.
#[derive(Clone, Copy)]
enum Cols {
    All,
    Only(&'static [&'static str]),
    Except(&'static [&'static str]),
}

/// What one role may do with one table, written from the policy's intent (not read from it).
struct Grant {
    table: &'static str,
    sql_table: &'static str,
    cols: Cols,
    /// SQL condition of the rows the role sees; `None`: all.
    rows: Option<&'static str>,
    aggregate_only: bool,
}

const fn all(table: &'static str, sql_table: &'static str) -> Grant {
    Grant { table, sql_table, cols: Cols::All, rows: None, aggregate_only: false }
}

const TABLES: [(&str, &str); 9] = [
    ("agents", "agents"),
    ("customers", "customers"),
    ("inventory", "inventory"),
    ("orders", "orders"),
    ("products", "products"),
    ("reconciliationBatches", "reconciliation_batches"),
    ("reconciliationExceptions", "reconciliation_exceptions"),
    ("tickets", "tickets"),
    ("warehouses", "warehouses"),
];

const LEAD_WAREHOUSES: [&str; 2] = ["WH-BER", "WH-SIN"];

fn roles() -> Vec<(&'static str, Json, Vec<Grant>)> {
    vec![
        ("admin", json!({}), TABLES.iter().map(|(t, s)| all(t, s)).collect()),
        (
            "ops_manager",
            json!({}),
            vec![
                all("orders", "orders"),
                all("warehouses", "warehouses"),
                all("products", "products"),
                Grant { cols: Cols::Except(&["email", "phone"]), ..all("customers", "customers") },
                Grant {
                    cols: Cols::Only(&["sku", "warehouseId", "onHand", "reserved", "reorderPoint"]),
                    aggregate_only: true,
                    ..all("inventory", "inventory")
                },
                Grant {
                    cols: Cols::Only(&["queue", "priority", "status", "openedAt", "firstResponseAt", "solvedAt"]),
                    aggregate_only: true,
                    ..all("tickets", "tickets")
                },
            ],
        ),
        (
            "warehouse_lead",
            json!({ "warehouses": LEAD_WAREHOUSES }),
            vec![
                Grant { rows: Some("warehouse_id IN ('WH-BER', 'WH-SIN')"), ..all("inventory", "inventory") },
                Grant { rows: Some("id IN ('WH-BER', 'WH-SIN')"), ..all("warehouses", "warehouses") },
                all("products", "products"),
            ],
        ),
        ("support_lead", json!({}), vec![all("tickets", "tickets"), all("agents", "agents")]),
        (
            "finance",
            json!({}),
            vec![
                all("reconciliationBatches", "reconciliation_batches"),
                all("reconciliationExceptions", "reconciliation_exceptions"),
                Grant {
                    cols: Cols::Only(&[
                        "id",
                        "channel",
                        "status",
                        "total",
                        "currency",
                        "region",
                        "createdAt",
                        "paidAt",
                    ]),
                    ..all("orders", "orders")
                },
            ],
        ),
        (
            "analyst",
            json!({}),
            TABLES
                .iter()
                .map(|(t, s)| match *t {
                    "orders" => Grant { cols: Cols::Except(&["notes"]), ..all(t, s) },
                    "customers" => Grant { cols: Cols::Except(&["name", "email", "phone"]), ..all(t, s) },
                    _ => all(t, s),
                })
                .collect(),
        ),
    ]
}

/// Random business data: every table, nulls in every nullable column, thousands of rows.
fn random_data(seed: f64) -> String {
    format!(
        "SELECT setseed({seed});
         INSERT INTO warehouses VALUES
           ('WH-BER', 'Berlin', 'eu', 'Europe/Berlin'), ('WH-MAD', 'Madrid', 'eu', 'Europe/Madrid'),
           ('WH-NJE', 'New Jersey', 'us', 'America/New_York'), ('WH-DAL', 'Dallas', 'us', 'America/Chicago'),
           ('WH-SIN', 'Singapore', 'apac', 'Asia/Singapore'), ('WH-SYD', 'Sydney', 'apac', 'Australia/Sydney');
         INSERT INTO customers (name, email, phone, region, created_at)
           SELECT 'Customer ' || g, 'c' || g || '@example.com',
                  CASE WHEN random() < 0.3 THEN NULL ELSE '+49 30 ' || g END,
                  (ARRAY['eu', 'us', 'apac'])[1 + floor(random() * 3)::int],
                  now() - random() * interval '400 days'
           FROM generate_series(1, 1500) g;
         INSERT INTO products
           SELECT 'SKU-' || lpad(g::text, 5, '0'), 'Product ' || g,
                  (ARRAY['toys', 'books', 'garden', 'tools'])[1 + floor(random() * 4)::int],
                  round((random() * 200)::numeric, 2)
           FROM generate_series(1, 400) g;
         INSERT INTO inventory (sku, warehouse_id, on_hand, reserved, reorder_point, updated_at)
           SELECT p.sku, w.id, floor(random() * 500)::int, floor(random() * 50)::int, floor(random() * 100)::int,
                  now() - random() * interval '10 days'
           FROM products p CROSS JOIN warehouses w WHERE random() < 0.5;
         INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count,
                             notes, created_at, updated_at, paid_at, shipped_at)
           SELECT (ARRAY['web', 'app', 'marketplace', 'phone', 'store'])[1 + floor(random() * 5)::int],
                  1 + floor(random() * 1500)::bigint,
                  (ARRAY['pending', 'paid', 'picking', 'shipped', 'delivered', 'cancelled', 'refunded'])[1 + floor(random() * 7)::int],
                  round((random() * 900)::numeric, 2), 'EUR',
                  (ARRAY['WH-BER', 'WH-MAD', 'WH-NJE', 'WH-DAL', 'WH-SIN', 'WH-SYD'])[1 + floor(random() * 6)::int],
                  (ARRAY['eu', 'us', 'apac'])[1 + floor(random() * 3)::int],
                  1 + floor(random() * 9)::int,
                  CASE WHEN random() < 0.8 THEN NULL ELSE 'leave at door ' || g END,
                  now() - random() * interval '30 days', now(),
                  CASE WHEN random() < 0.4 THEN NULL ELSE now() - random() * interval '20 days' END,
                  CASE WHEN random() < 0.6 THEN NULL ELSE now() - random() * interval '10 days' END
           FROM generate_series(1, 4000) g;
         INSERT INTO agents (name, queue, availability)
           SELECT 'Agent ' || g, (ARRAY['billing', 'shipping', 'returns', 'technical'])[1 + floor(random() * 4)::int],
                  (ARRAY['online', 'away', 'offline'])[1 + floor(random() * 3)::int]
           FROM generate_series(1, 40) g;
         INSERT INTO tickets (queue, priority, status, subject, customer_id, assignee_id, opened_at,
                              first_response_at, solved_at)
           SELECT (ARRAY['billing', 'shipping', 'returns', 'technical'])[1 + floor(random() * 4)::int],
                  (ARRAY['low', 'normal', 'high', 'urgent'])[1 + floor(random() * 4)::int],
                  (ARRAY['new', 'open', 'pending', 'solved', 'closed'])[1 + floor(random() * 5)::int],
                  'Ticket ' || g, 1 + floor(random() * 1500)::bigint,
                  CASE WHEN random() < 0.3 THEN NULL ELSE 1 + floor(random() * 40)::int END,
                  now() - random() * interval '30 days',
                  CASE WHEN random() < 0.5 THEN NULL ELSE now() - random() * interval '5 days' END,
                  CASE WHEN random() < 0.7 THEN NULL ELSE now() - random() * interval '2 days' END
           FROM generate_series(1, 2500) g;
         INSERT INTO reconciliation_batches (account, batch_date, expected_count, matched_count, expected_amount,
                                             matched_amount, status, closed_at)
           SELECT a, current_date - d, floor(random() * 500)::int, floor(random() * 500)::int,
                  round((random() * 100000)::numeric, 2), round((random() * 100000)::numeric, 2),
                  (ARRAY['open', 'matching', 'matched', 'exception'])[1 + floor(random() * 4)::int],
                  CASE WHEN random() < 0.5 THEN NULL ELSE now() END
           FROM unnest(ARRAY['stripe-eu', 'stripe-us', 'adyen-apac', 'paypal']) a, generate_series(0, 59) d;
         INSERT INTO reconciliation_exceptions (batch_id, kind, amount, detail, resolved_at)
           SELECT 1 + floor(random() * 240)::bigint, (ARRAY['amount_mismatch', 'missing_payment'])[1 + floor(random() * 2)::int],
                  round((random() * 500 - 250)::numeric, 2), 'detail ' || g,
                  CASE WHEN random() < 0.5 THEN NULL ELSE now() END
           FROM generate_series(1, 400) g;"
    )
}

/// A table's columns from the catalog: (GraphQL name, SQL name, SQL type), in order.
async fn catalog(client: &tokio_postgres::Client, table: &str) -> Vec<(String, String, String)> {
    client
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let name: String = r.get(0);
            (opslive::policy::names::field_name(&name).unwrap(), name, r.get(1))
        })
        .collect()
}

/// The columns the example configuration keeps out of memory (never visible to anyone).
fn excluded(table: &str, column: &str) -> bool {
    table == "customers" && (column == "email" || column == "phone")
}

fn visible(grant: &Grant, columns: &[(String, String, String)]) -> Vec<(String, String, String)> {
    columns
        .iter()
        .filter(|(gql, sql, _)| {
            !excluded(grant.sql_table, sql)
                && match grant.cols {
                    Cols::All => true,
                    Cols::Only(list) => list.contains(&gql.as_str()),
                    Cols::Except(list) => !list.contains(&gql.as_str()),
                }
        })
        .cloned()
        .collect()
}

/// A GraphQL value as PostgreSQL's text of it (TimeZone is UTC on test servers).
fn graphql_text(v: &Json) -> Option<String> {
    match v {
        Json::Null => None,
        Json::String(s) => Some(s.clone()),
        Json::Bool(b) => Some(if *b { "true" } else { "false" }.into()),
        other => Some(other.to_string()),
    }
}

fn sql_text(text: Option<String>, ty: &str) -> Option<String> {
    let text = text?;
    Some(match ty {
        // `2024-05-31 13:45:00.25+00` is `2024-05-31T13:45:00.25Z`.
        "timestamp with time zone" => format!("{}Z", text.replacen(' ', "T", 1).trim_end_matches("+00")),
        "boolean" => if text == "t" { "true" } else { "false" }.into(),
        _ => text,
    })
}

type Rows = BTreeMap<String, Vec<Option<String>>>;

/// The rows of `grant` that SQL says the role may see, keyed by their first column(s).
async fn sql_rows(
    client: &tokio_postgres::Client,
    grant: &Grant,
    cols: &[(String, String, String)],
    key: &[String],
) -> Rows {
    let select = cols.iter().map(|(_, sql, _)| format!("{sql}::text")).collect::<Vec<_>>().join(", ");
    let filter = grant.rows.unwrap_or("true");
    let rows = client.query(&format!("SELECT {select} FROM {} WHERE {filter}", grant.sql_table), &[]).await.unwrap();
    rows.iter()
        .map(|r| {
            let values: Vec<Option<String>> =
                cols.iter().enumerate().map(|(i, (_, _, ty))| sql_text(r.get::<_, Option<String>>(i), ty)).collect();
            let k = key_of(cols, key, &values);
            (k, values)
        })
        .collect()
}

fn key_of(cols: &[(String, String, String)], key: &[String], values: &[Option<String>]) -> String {
    key.iter()
        .map(|k| {
            let i = cols.iter().position(|(_, sql, _)| sql == k).expect("key columns are visible");
            values[i].clone().unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("|")
}

async fn primary_key(client: &tokio_postgres::Client, table: &str) -> Vec<String> {
    client
        .query(
            "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
             WHERE i.indrelid = ('public.' || $1)::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
            &[&table],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Every row the role gets through `table(...)`, paged.
async fn graphql_rows(
    shop: &Shop,
    token: &str,
    grant: &Grant,
    cols: &[(String, String, String)],
    key: &[String],
) -> Rows {
    let fields = cols.iter().map(|(g, _, _)| g.as_str()).collect::<Vec<_>>().join(" ");
    let mut out = Rows::new();
    let page = 3000;
    for offset in (0..).step_by(page) {
        let q = format!("query($o: Int) {{ {}(limit: {page}, offset: $o) {{ {fields} }} }}", grant.table);
        let d = data(shop.addr, token, &q, json!({ "o": offset })).await;
        let rows = d[grant.table].as_array().unwrap().clone();
        for row in &rows {
            let object = row.as_object().unwrap();
            assert_eq!(object.len(), cols.len(), "{}: exactly the asked (visible) fields come back", grant.table);
            let values: Vec<Option<String>> = cols.iter().map(|(g, _, _)| graphql_text(&row[g])).collect();
            let k = key_of(cols, key, &values);
            assert!(out.insert(k, values).is_none(), "{}: a row came back twice across pages", grant.table);
        }
        if rows.len() < page {
            return out;
        }
    }
    unreachable!()
}

fn names(list: &Json) -> BTreeSet<String> {
    list.as_array().into_iter().flatten().map(|f| f["name"].as_str().unwrap().to_string()).collect()
}

async fn expect_invalid(shop: &Shop, token: &str, query: &str) {
    let reply = post(shop.addr, Some(token), query, json!({})).await;
    assert_eq!(reply.status, 400, "{query} → {}", reply.text);
    assert_eq!(reply.codes(), ["GRAPHQL_VALIDATION_FAILED"], "{query} → {}", reply.text);
    assert!(reply.json()["data"].is_null(), "no data at all: {}", reply.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_gets_exactly_its_share() {
    let seed: f64 = rand::random::<f64>() * 2.0 - 1.0;
    eprintln!("random data seed: {seed}");
    let shop = Shop::start(&random_data(seed), &fixture_policy()).await;
    let client = shop.pg.connect("shop").await;
    let counts: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM orders) + (SELECT count(*) FROM inventory) + (SELECT count(*) FROM tickets)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(counts > 7000, "thousands of rows: {counts}");

    for (role, claims, grants) in roles() {
        let token = token(role, claims);
        let schema = data(shop.addr, &token, "{ __schema { queryType { fields { name } } } }", json!({})).await;
        let root = names(&schema["__schema"]["queryType"]["fields"]);
        // Every role has the product's own fields (KPIs, alerts, its workspace), whatever its tables.
        let mut expected_root: BTreeSet<String> =
            support::graphql::PRODUCT_QUERY_FIELDS.into_iter().map(String::from).collect();
        if role == "admin" {
            expected_root.extend(support::graphql::NOTIFICATION_QUERY_FIELDS.map(String::from));
            expected_root.extend(support::graphql::REVOCATION_QUERY_FIELDS.map(String::from));
        }
        for grant in &grants {
            let columns = catalog(&client, grant.sql_table).await;
            let cols = visible(grant, &columns);
            let key = primary_key(&client, grant.sql_table).await;
            let key_visible = key.iter().all(|k| cols.iter().any(|(_, s, _)| s == k));
            expected_root.insert(format!("{}Aggregate", grant.table));
            if !grant.aggregate_only {
                expected_root.insert(grant.table.to_string());
                if key_visible {
                    expected_root.insert(format!("{}ByKey", grant.table));
                }
            }
            let type_name = {
                let mut c = grant.table.chars();
                c.next().unwrap().to_uppercase().chain(c).collect::<String>()
            };
            let hidden: Vec<&(String, String, String)> =
                columns.iter().filter(|c| !cols.contains(c) && !excluded(grant.sql_table, &c.1)).collect();
            let context = format!("role {role}, table {}", grant.table);

            // Introspection shows the visible columns, in filters and orderings too, and nothing else.
            let q = format!(
                r#"{{ t: __type(name: "{type_name}") {{ fields {{ name }} }}
                     w: __type(name: "{type_name}BoolExp") {{ inputFields {{ name }} }}
                     o: __type(name: "{type_name}OrderBy") {{ inputFields {{ name }} }}
                     g: __type(name: "{type_name}Column") {{ enumValues {{ name }} }}
                     k: __type(name: "{type_name}GroupKey") {{ fields {{ name }} }} }}"#
            );
            let types = data(shop.addr, &token, &q, json!({})).await;
            let want: BTreeSet<String> = cols.iter().map(|(g, _, _)| g.clone()).collect();
            if grant.aggregate_only {
                assert!(types["t"].is_null(), "{context}: no row type without row access: {types}");
            } else {
                assert_eq!(names(&types["t"]["fields"]), want, "{context}: row type");
            }
            assert_eq!(names(&types["k"]["fields"]), want, "{context}: group key (every fixture column has equality)");
            let mut want_where = want.clone();
            want_where.extend(["and", "or", "not"].map(String::from));
            assert_eq!(names(&types["w"]["inputFields"]), want_where, "{context}: where input");
            assert!(names(&types["o"]["inputFields"]).is_subset(&want), "{context}: orderBy input");
            let enum_values = names(&types["g"]["enumValues"]);
            assert_eq!(enum_values.len(), cols.len(), "{context}: groupBy enum (every fixture column has equality)");

            // Rows: exactly what SQL returns under the policy's filter, with exactly the visible columns.
            if !grant.aggregate_only {
                let want_rows = sql_rows(&client, grant, &cols, &key).await;
                let got = graphql_rows(&shop, &token, grant, &cols, &key).await;
                assert_eq!(got.len(), want_rows.len(), "{context}: row count");
                assert!(got == want_rows, "{context}: rows differ from SQL");
            }

            // Aggregates: count and a grouping, against SQL under the same filter.
            let group = &cols[0];
            let q = format!(
                "{{ {}Aggregate(groupBy: [{}]) {{ key {{ {} }} count }} }}",
                grant.table,
                opslive::policy::names::enum_value(&group.0),
                group.0
            );
            let groups = data(shop.addr, &token, &q, json!({})).await;
            let got: BTreeMap<Option<String>, i64> = groups[format!("{}Aggregate", grant.table)]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| (graphql_text(&g["key"][&group.0]), g["count"].as_i64().unwrap()))
                .collect();
            let sql = format!(
                "SELECT {}::text, count(*) FROM {} WHERE {} GROUP BY 1",
                group.1,
                grant.sql_table,
                grant.rows.unwrap_or("true")
            );
            let want: BTreeMap<Option<String>, i64> = client
                .query(&sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| (sql_text(r.get(0), &group.2), r.get(1)))
                .collect();
            assert_eq!(got, want, "{context}: groups");

            // Hidden columns cannot be read, filtered, ordered, grouped or aggregated.
            for (gql, _, _) in hidden {
                let t = grant.table;
                let probes = [
                    format!("{{ {t}Aggregate(where: {{ {gql}: {{ isNull: false }} }}) {{ count }} }}"),
                    format!("{{ {t}Aggregate(groupBy: [{}]) {{ count }} }}", opslive::policy::names::enum_value(gql)),
                    format!("{{ {t}Aggregate {{ max {{ {gql} }} }} }}"),
                    format!("{{ {t}Aggregate {{ key {{ {gql} }} }} }}"),
                    format!("{{ {t}(limit: 1) {{ {gql} }} }}"),
                    format!("{{ {t}(orderBy: {{ {gql}: ASC }}, limit: 1) {{ __typename }} }}"),
                ];
                for probe in probes {
                    expect_invalid(&shop, &token, &probe).await;
                }
            }
        }
        assert_eq!(root, expected_root, "role {role}: root fields");

        // Tables the role is not granted are not there at all.
        for (table, _) in TABLES.iter().filter(|(t, _)| !grants.iter().any(|g| g.table == *t)) {
            expect_invalid(&shop, &token, &format!("{{ {table}Aggregate {{ count }} }}")).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_warehouse_filter_holds_through_keys_filters_and_sums() {
    let shop = Shop::start(&random_data(0.25), &fixture_policy()).await;
    let client = shop.pg.connect("shop").await;
    let lead = token("warehouse_lead", json!({ "warehouses": LEAD_WAREHOUSES }));

    // A filter naming another warehouse finds nothing; the lead's own rows are all there.
    let d =
        data(shop.addr, &lead, r#"{ inventory(where: { warehouseId: { eq: "WH-MAD" } }) { sku } }"#, json!({})).await;
    assert_eq!(d["inventory"], json!([]));
    let d = data(
        shop.addr,
        &lead,
        r#"{ inventoryAggregate(where: { onHand: { lt: 100 } }, groupBy: [WAREHOUSE_ID]) { key { warehouseId } count sum { onHand reserved } max { onHand } } }"#,
        json!({}),
    )
    .await;
    let want = client
        .query(
            "SELECT warehouse_id, count(*), sum(on_hand)::text, sum(reserved)::text, max(on_hand) FROM inventory
             WHERE on_hand < 100 AND warehouse_id IN ('WH-BER', 'WH-SIN') GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let want: Vec<Json> = want
        .iter()
        .map(|r| {
            json!({ "key": { "warehouseId": r.get::<_, String>(0) }, "count": r.get::<_, i64>(1),
                    "sum": { "onHand": r.get::<_, String>(2), "reserved": r.get::<_, String>(3) },
                    "max": { "onHand": r.get::<_, i32>(4) } })
        })
        .collect();
    assert_eq!(d["inventoryAggregate"], Json::Array(want));

    // By key: a row of the lead's warehouse comes back, one of another warehouse reads as missing.
    let inside: (String, String) = {
        let r = client
            .query_one("SELECT sku, warehouse_id FROM inventory WHERE warehouse_id = 'WH-BER' LIMIT 1", &[])
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    let outside: (String, String) = {
        let r = client
            .query_one("SELECT sku, warehouse_id FROM inventory WHERE warehouse_id = 'WH-MAD' LIMIT 1", &[])
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    let q = "query($s: String!, $w: String!) { inventoryByKey(sku: $s, warehouseId: $w) { sku warehouseId onHand } }";
    let d = data(shop.addr, &lead, q, json!({ "s": inside.0, "w": inside.1 })).await;
    assert_eq!(d["inventoryByKey"]["warehouseId"], "WH-BER");
    let d = data(shop.addr, &lead, q, json!({ "s": outside.0, "w": outside.1 })).await;
    assert!(d["inventoryByKey"].is_null(), "another warehouse's row: {d}");
    let admin = token("admin", json!({}));
    let d = data(shop.addr, &admin, q, json!({ "s": outside.0, "w": outside.1 })).await;
    assert_eq!(d["inventoryByKey"]["warehouseId"], "WH-MAD", "the row exists");

    // A token without the claim is refused for the filtered tables, not shown everything.
    let bare = token("warehouse_lead", json!({}));
    let reply = post(shop.addr, Some(&bare), "{ inventoryAggregate { count } }", json!({})).await;
    assert_eq!(reply.codes(), ["FORBIDDEN"], "{}", reply.text);
    assert!(reply.json()["data"].is_null(), "{}", reply.text);
    let d = data(shop.addr, &bare, "{ productsAggregate { count } }", json!({})).await;
    assert!(d["productsAggregate"][0]["count"].as_i64().unwrap() > 0, "unfiltered tables still answer");

    // A role outside the policy gets nothing at all.
    let stranger = token("intern", json!({}));
    let reply = post(shop.addr, Some(&stranger), "{ __typename }", json!({})).await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert_eq!(reply.codes(), ["FORBIDDEN"]);
}
