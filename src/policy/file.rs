//! The policy file's TOML shape (see `fixtures/policy.toml` for a commented example).
//!
//! ```toml
//! [roles.warehouse_lead.tables.inventory]
//! columns = "*"                                   # or ["sku", "onHand"], or { except = ["notes"] }
//! filter = { warehouseId = { in = { claim = "warehouses" } } }
//! operations = ["rows", "by_key", "aggregate"]    # the default
//! ```
//!
//! Unknown keys are refused, so a misspelt `colums` cannot silently widen or narrow a grant.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    #[serde(default)]
    pub roles: BTreeMap<String, RoleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleFile {
    /// For people reading the file; shown nowhere else.
    #[serde(default)]
    pub description: Option<String>,
    /// Every watched table, every column, every row (tables listed under `tables` still apply
    /// their own rule). Meant for `admin`.
    #[serde(default)]
    pub all_tables: bool,
    /// What the role may do beside reading (`manage_kpis`, `resync`, …); names are checked
    /// when the file is loaded.
    #[serde(default)]
    pub permissions: Vec<String>,
    #[serde(default)]
    pub tables: BTreeMap<String, TableFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableFile {
    /// `"*"`, a list of GraphQL column names, or `{ except = [...] }`. Required: what a role
    /// sees is written down, never implied.
    pub columns: Option<ColumnsFile>,
    /// A row filter in the `where` language; absent: every row.
    pub filter: Option<toml::Value>,
    /// Which root fields the role gets for the table; absent: all three.
    pub operations: Option<Vec<OperationFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ColumnsFile {
    All(String),
    List(Vec<String>),
    Except { except: Vec<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationFile {
    /// `orders(where, orderBy, limit, offset)`
    Rows,
    /// `ordersByKey(...)`
    ByKey,
    /// `ordersAggregate(where, groupBy)`
    Aggregate,
    /// `ordersChanges(where, after)` (a subscription)
    Changes,
}
