//! Unit tests of the policy: the fixture file against the fixture tables, error messages that
//! name file, role and table, hidden columns in row filters, whole-version swaps.

use std::sync::Arc;

use super::*;
use crate::config::Config;
use crate::registry::{Column, ColumnType, TableSchema};

const FIXTURE: &str = include_str!("../../fixtures/policy.toml");

fn registry() -> Registry {
    Config::from_toml(crate::demo::EXAMPLE_CONFIG).unwrap().registry().unwrap()
}

/// The fixture `inventory` and `customers` tables as the source reports them (customers'
/// email and phone are excluded from memory by the example configuration).
fn schema(registry: &Registry, table: &str) -> TableSchema {
    let column = |name: &str, ty: ColumnType| Column { name: name.into(), ty, nullable: false };
    let (columns, key) = match table {
        "inventory" => (
            vec![
                column("sku", ColumnType::Text),
                column("warehouse_id", ColumnType::Text),
                column("on_hand", ColumnType::Int4),
                column("reserved", ColumnType::Int4),
                column("reorder_point", ColumnType::Int4),
                column("updated_at", ColumnType::TimestampTz),
            ],
            vec![0, 1],
        ),
        "customers" => (
            vec![
                column("id", ColumnType::Int8),
                column("name", ColumnType::Text),
                column("region", ColumnType::Text),
                column("created_at", ColumnType::TimestampTz),
            ],
            vec![0],
        ),
        other => panic!("no test schema for {other}"),
    };
    TableSchema { spec: registry.by_name(table).unwrap().clone(), columns, key, indexed: vec![], version: 1 }
}

#[test]
fn the_fixture_loads_and_fits_its_tables() {
    let r = registry();
    let p = Policy::from_toml(FIXTURE, "fixtures/policy.toml", &r).unwrap();
    let roles: Vec<&str> = p.roles().collect();
    assert_eq!(roles, ["admin", "analyst", "finance", "ops_manager", "support_lead", "warehouse_lead"]);
    let (inventory, customers) = (schema(&r, "inventory"), schema(&r, "customers"));
    p.check([&inventory, &customers]).unwrap();

    let lead = p.grant("warehouse_lead", &inventory).unwrap().unwrap();
    assert_eq!(lead.columns, [0, 1, 2, 3, 4, 5]);
    assert!(lead.filter.is_some());
    assert_eq!(lead.operations, Operations::ALL);
    assert!(p.grant("warehouse_lead", &customers).unwrap().is_none(), "not listed: denied");

    let analyst = p.grant("analyst", &customers).unwrap().unwrap();
    assert_eq!(analyst.columns, [0, 2, 3], "name hidden; email and phone never entered memory");
    let ops = p.grant("ops_manager", &inventory).unwrap().unwrap();
    assert_eq!(ops.operations, Operations { rows: false, by_key: false, aggregate: true, changes: false });
    assert_eq!(ops.columns, [0, 1, 2, 3, 4]);
    let admin = p.grant("admin", &customers).unwrap().unwrap();
    assert_eq!(admin.columns, [0, 1, 2, 3]);
    assert!(p.grant("nobody", &customers).unwrap().is_none(), "unknown roles see nothing");
}

#[test]
fn errors_name_the_file_role_and_table() {
    let r = registry();
    let err = |text: &str| Policy::from_toml(text, "p.toml", &r).unwrap_err().to_string();
    let e = err("[roles.a.tables.ordrs]\ncolumns = \"*\"\n");
    assert!(e.starts_with("policy p.toml: role `a`, table `ordrs`: no watched table") && e.contains("orders"), "{e}");
    let e = err("[roles.a.tables.orders]\nfilter = { status = { eq = \"paid\" } }\n");
    assert!(e.contains("`columns` is required"), "{e}");
    let e = err("[roles.a.tables.orders]\ncolumns = \"all\"\n");
    assert!(e.contains("use \"*\""), "{e}");
    let e = err("[roles.a.tables.orders]\ncolumns = \"*\"\nfilter = { status = { equals = \"paid\" } }\n");
    assert!(e.contains("role `a`, table `orders`: filter: at `status.equals`: unknown operator"), "{e}");
    let e = err("[roles.a.tables.orders]\ncolums = \"*\"\n");
    assert!(e.starts_with("policy p.toml:") && e.contains("colums"), "{e}");
    let e = err("[roles.a]\nall_tables = \"yes\"\n");
    assert!(e.contains("all_tables") || e.contains("invalid type"), "{e}");

    // Columns and literal types are checked against the table's schema.
    let inventory = schema(&r, "inventory");
    let check =
        |text: &str| Policy::from_toml(text, "p.toml", &r).unwrap().check([&inventory]).unwrap_err().to_string();
    let e = check("[roles.a.tables.inventory]\ncolumns = [\"sku\", \"onHnad\"]\n");
    assert!(e.contains("role `a`, table `inventory`: unknown column `onHnad`"), "{e}");
    let e = check("[roles.a.tables.inventory]\ncolumns = \"*\"\nfilter = { onHand = { lt = \"few\" } }\n");
    assert!(e.contains("table `inventory`: filter: `onHand.lt`: expected a 32-bit integer"), "{e}");
    let e = check("[roles.a.tables.inventory]\ncolumns = \"*\"\nfilter = { onHand = { like = \"1%\" } }\n");
    assert!(e.contains("does not support `like`"), "{e}");
}

#[test]
fn a_filter_can_read_hidden_columns() {
    let r = registry();
    let text =
        "[roles.a.tables.inventory]\ncolumns = [\"sku\", \"onHand\"]\nfilter = { warehouseId = { eq = \"WH-BER\" } }\n";
    let p = Policy::from_toml(text, "p.toml", &r).unwrap();
    let g = p.grant("a", &schema(&r, "inventory")).unwrap().unwrap();
    assert_eq!(g.columns, [0, 2]);
    assert!(g.filter.is_some());
}

#[test]
fn the_store_swaps_whole_versions() {
    let r = registry();
    let store = PolicyStore::new(Policy::deny_all());
    let first = store.current();
    assert!(!first.policy.has_role("admin"));
    let generation = store.replace(Policy::from_toml(FIXTURE, "f", &r).unwrap());
    let now = store.current();
    assert_eq!(now.generation, generation);
    assert!(now.generation > first.generation && now.policy.has_role("admin"));
    assert!(!first.policy.has_role("admin"), "a reader keeps the version it took");
    let _ = Arc::clone(&now.policy);
}

#[test]
fn a_role_keeps_its_rules_when_only_others_change() {
    let r = registry();
    let lead = "[roles.lead.tables.inventory]\ncolumns = \"*\"\nfilter = { warehouseId = { in = { claim = \"warehouses\" } } }\n";
    let before = Policy::from_toml(lead, "a", &r).unwrap();
    let other =
        Policy::from_toml(&format!("{lead}[roles.ops]\ndescription = \"new\"\nall_tables = true\n"), "b", &r).unwrap();
    assert!(other.same_rules(&before, "lead"), "another role was added");
    assert!(!other.same_rules(&before, "ops"), "ops is new");
    let narrowed = lead.replace("columns = \"*\"", "columns = [\"sku\"]");
    assert!(!Policy::from_toml(&narrowed, "c", &r).unwrap().same_rules(&before, "lead"));
    let refiltered = lead.replace("in = { claim = \"warehouses\" }", "eq = \"WH-BER\"");
    assert!(!Policy::from_toml(&refiltered, "d", &r).unwrap().same_rules(&before, "lead"));
}

#[test]
fn column_and_ago_operands_are_checked_at_load() {
    let r = registry();
    // The duration is read with the file.
    let e = Policy::from_toml(
        "[roles.a.tables.inventory]\ncolumns = \"*\"\nfilter = { updatedAt = { gt = { ago = \"P1M\" } } }\n",
        "p.toml",
        &r,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("table `inventory`: filter: at `updatedAt.gt.ago`: `ago`: months and years"), "{e}");
    // Columns and types once the table's schema is known.
    let inventory = schema(&r, "inventory");
    let check =
        |text: &str| Policy::from_toml(text, "p.toml", &r).unwrap().check([&inventory]).map_err(|e| e.to_string());
    let e = check(
        "[roles.a.tables.inventory]\ncolumns = \"*\"\nfilter = { onHand = { lt = { column = \"reorderPnt\" } } }\n",
    );
    assert!(e.unwrap_err().contains("filter: `onHand.lt`: unknown column `reorderPnt`"));
    let e = check("[roles.a.tables.inventory]\ncolumns = \"*\"\nfilter = { onHand = { ltColumn = \"sku\" } }\n");
    assert!(e.unwrap_err().contains("cannot be compared with column `sku` (text)"));
    let e = check("[roles.a.tables.inventory]\ncolumns = \"*\"\nfilter = { onHand = { gtAgo = \"PT1H\" } }\n");
    assert!(e.unwrap_err().contains("`ago` needs a date or timestamp column"));
    check("[roles.a.tables.inventory]\ncolumns = [\"sku\"]\nfilter = { onHand = { lte = { column = \"reorderPoint\" } }, updatedAt = { gt = { ago = \"P2W\" } } }\n")
        .expect("a filter may compare hidden columns and read the clock");
}

#[test]
fn permissions_are_granted_per_role_and_checked_at_load() {
    let r = registry();
    let fixture = Policy::from_toml(FIXTURE, "f", &r).unwrap();
    for p in Permission::ALL {
        assert!(fixture.may("admin", p), "admin may {p}");
    }
    assert!(fixture.may("ops_manager", Permission::ManageKpis));
    assert!(fixture.may("ops_manager", Permission::ManageAlerts));
    assert!(!fixture.may("ops_manager", Permission::Resync));
    assert!(!fixture.may("analyst", Permission::ManageKpis));
    assert!(!fixture.may("nobody", Permission::ManageKpis));
    let misspelt = "[roles.ops]\npermissions = [\"manage_kpi\"]\n";
    let e = Policy::from_toml(misspelt, "p.toml", &r).unwrap_err().to_string();
    assert!(e.contains("p.toml") && e.contains("role `ops`") && e.contains("unknown permission `manage_kpi`"), "{e}");
    assert!(e.contains("manage_kpis, manage_alerts"), "the known names are listed: {e}");
}
