//! The role policy: which tables, columns and rows each role may read.
//!
//! A policy file (`fixtures/policy.toml` is the fixture) grants, per role and table, the visible
//! columns and a row filter in the same language as GraphQL `where`, whose operands may be
//! claims of the caller's token. Everything not granted is denied: a role missing from the file
//! sees nothing, a table missing from a role is not in its schema, a hidden column cannot be
//! read, filtered, ordered or aggregated.
//!
//! Tables and roles are checked when the file is loaded; columns and literal types are checked
//! against a table's schema, which is only known once the source has read its catalog, so
//! [`Policy::check`] runs again whenever schemas are known (at reload) and [`Policy::grant`]
//! refuses (and the table stays hidden) when a rule does not fit the table it is applied to.

pub mod compile;
pub mod condition;
mod error;
mod file;
pub mod literal;
pub mod names;
mod permission;
pub mod store;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

pub use error::{Place, PolicyError};
pub use permission::Permission;
pub use store::{PolicyStore, watch_file};

use crate::registry::{Registry, TableSchema};
use compile::{Binding, ClaimValues, compile};
use condition::{Claims, Condition};
use file::{ColumnsFile, OperationFile, PolicyFile, TableFile};

/// A loaded, checked policy.
#[derive(Debug, Clone)]
pub struct Policy {
    origin: String,
    roles: BTreeMap<String, RolePolicy>,
}

#[derive(Debug, Clone)]
struct RolePolicy {
    description: Option<String>,
    all_tables: bool,
    tables: BTreeMap<String, TableRule>,
    permissions: BTreeSet<Permission>,
}

#[derive(Debug, Clone, PartialEq)]
struct TableRule {
    columns: ColumnRule,
    filter: Option<Arc<Condition>>,
    operations: Operations,
}

#[derive(Debug, Clone, PartialEq)]
enum ColumnRule {
    All,
    Only(Vec<String>),
    Except(Vec<String>),
}

/// The root fields a role gets for a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operations {
    pub rows: bool,
    pub by_key: bool,
    pub aggregate: bool,
    /// The row changes themselves (`…Changes`), as they commit.
    pub changes: bool,
}

impl Operations {
    pub const ALL: Operations = Operations { rows: true, by_key: true, aggregate: true, changes: true };
}

/// What one role may do with one table (of one schema version).
#[derive(Debug, Clone)]
pub struct Grant {
    /// Positions of the visible columns, in column order.
    pub columns: Vec<usize>,
    /// The row filter, still holding claim references; `None`: every row.
    pub filter: Option<Arc<Condition>>,
    pub operations: Operations,
}

impl Policy {
    /// The policy without a file: no role sees anything.
    pub fn deny_all() -> Policy {
        Policy { origin: "(none configured)".into(), roles: BTreeMap::new() }
    }

    /// Reads and checks a policy file against the watched tables.
    pub fn load(path: &Path, registry: &Registry) -> Result<Policy, PolicyError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| PolicyError::Read { file: origin.clone(), error })?;
        Policy::from_toml(&text, &origin, registry)
    }

    /// Parses and checks policy text; `origin` names it in messages.
    pub fn from_toml(text: &str, origin: &str, registry: &Registry) -> Result<Policy, PolicyError> {
        let file: PolicyFile =
            toml::from_str(text).map_err(|e| PolicyError::Syntax { file: origin.into(), message: e.to_string() })?;
        let mut roles = BTreeMap::new();
        for (role, rf) in file.roles {
            let invalid = |table: Option<&str>, message: String| PolicyError::Invalid {
                file: origin.into(),
                place: Place { role: role.clone(), table: table.map(str::to_string) },
                message,
            };
            if role.is_empty() || role.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(invalid(None, "a role name must be non-empty, without spaces".into()));
            }
            let mut tables = BTreeMap::new();
            for (table, tf) in rf.tables {
                if registry.by_name(&table).is_none() {
                    let known: Vec<String> = registry.tables().map(|t| t.name.to_string()).collect();
                    return Err(invalid(
                        Some(&table),
                        format!("no watched table is called `{table}` (watched: {})", known.join(", ")),
                    ));
                }
                let rule = table_rule(tf).map_err(|message| invalid(Some(&table), message))?;
                tables.insert(table, rule);
            }
            let mut permissions = BTreeSet::new();
            for name in &rf.permissions {
                permissions.insert(Permission::parse(name).map_err(|message| invalid(None, message))?);
            }
            roles.insert(
                role,
                RolePolicy { description: rf.description, all_tables: rf.all_tables, tables, permissions },
            );
        }
        Ok(Policy { origin: origin.into(), roles })
    }

    /// Where the policy came from (for messages).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.roles.keys().map(String::as_str)
    }

    /// The role's `description` from the file.
    pub fn description(&self, role: &str) -> Option<&str> {
        self.roles.get(role).and_then(|r| r.description.as_deref())
    }

    /// Whether the policy grants `role` anything of `table` (by name), whatever its columns.
    pub fn mentions(&self, role: &str, table: &str) -> bool {
        self.roles.get(role).is_some_and(|r| r.all_tables || r.tables.contains_key(table))
    }

    /// Whether `role` has the same rules in both policies (its description aside).
    pub fn same_rules(&self, other: &Policy, role: &str) -> bool {
        match (self.roles.get(role), other.roles.get(role)) {
            (Some(a), Some(b)) => a.all_tables == b.all_tables && a.tables == b.tables,
            (None, None) => true,
            _ => false,
        }
    }

    /// Whether `role` may do `permission` (a role not in the policy may do nothing).
    pub fn may(&self, role: &str, permission: Permission) -> bool {
        self.roles.get(role).is_some_and(|r| r.permissions.contains(&permission))
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains_key(role)
    }

    /// What `role` may do with the table of `schema`; `None` when nothing.
    pub fn grant(&self, role: &str, schema: &TableSchema) -> Result<Option<Grant>, PolicyError> {
        let Some(rp) = self.roles.get(role) else { return Ok(None) };
        let table = &*schema.spec.name;
        let rule = match rp.tables.get(table) {
            Some(rule) => rule,
            None if rp.all_tables => {
                let columns = names::column_fields(schema).into_iter().map(|(i, _)| i).collect();
                return Ok(Some(Grant { columns, filter: None, operations: Operations::ALL }));
            }
            None => return Ok(None),
        };
        let invalid = |message: String| PolicyError::Invalid {
            file: self.origin.clone(),
            place: Place { role: role.into(), table: Some(table.into()) },
            message,
        };
        let fields = names::column_fields(schema);
        let excluded: Vec<String> = schema.spec.exclude.iter().filter_map(|c| names::field_name(c)).collect();
        let position = |name: &String| -> Result<Option<usize>, PolicyError> {
            match fields.iter().find(|(_, n)| n == name) {
                Some((i, _)) => Ok(Some(*i)),
                // Excluded columns never enter memory: hiding them again is fine.
                None if excluded.contains(name) => Ok(None),
                None => Err(invalid(format!(
                    "unknown column `{name}` (columns: {})",
                    fields.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>().join(", ")
                ))),
            }
        };
        let columns: Vec<usize> = match &rule.columns {
            ColumnRule::All => fields.iter().map(|(i, _)| *i).collect(),
            ColumnRule::Only(list) => {
                let mut wanted = Vec::new();
                for name in list {
                    wanted.extend(position(name)?);
                }
                fields.iter().map(|(i, _)| *i).filter(|i| wanted.contains(i)).collect()
            }
            ColumnRule::Except(list) => {
                let mut hidden = Vec::new();
                for name in list {
                    hidden.extend(position(name)?);
                }
                fields.iter().map(|(i, _)| *i).filter(|i| !hidden.contains(i)).collect()
            }
        };
        if let Some(filter) = &rule.filter {
            // The row filter may read hidden columns: it is the server's condition, not the caller's.
            let all: HashMap<String, usize> = fields.iter().map(|(i, n)| (n.clone(), *i)).collect();
            compile(filter, Binding { schema, columns: &all }, ClaimValues::Unchecked)
                .map_err(|e| invalid(format!("filter: {e}")))?;
        }
        Ok(Some(Grant { columns, filter: rule.filter.clone(), operations: rule.operations }))
    }

    /// Checks every rule against the tables whose schemas are known.
    pub fn check<'a>(&self, schemas: impl IntoIterator<Item = &'a TableSchema>) -> Result<(), PolicyError> {
        let schemas: Vec<&TableSchema> = schemas.into_iter().collect();
        for role in self.roles.keys() {
            for schema in &schemas {
                self.grant(role, schema)?;
            }
        }
        Ok(())
    }
}

fn table_rule(tf: TableFile) -> Result<TableRule, String> {
    let columns = match tf.columns {
        None => return Err("`columns` is required: \"*\", a list of columns, or { except = [...] }".into()),
        Some(ColumnsFile::All(s)) if s == "*" => ColumnRule::All,
        Some(ColumnsFile::All(s)) => {
            return Err(format!("`columns = \"{s}\"`: use \"*\", a list of columns, or {{ except = [...] }}"));
        }
        Some(ColumnsFile::List(list)) => ColumnRule::Only(list),
        Some(ColumnsFile::Except { except }) => ColumnRule::Except(except),
    };
    let filter = match tf.filter {
        None => None,
        Some(value) => {
            let json = serde_json::to_value(&value).map_err(|e| format!("filter: {e}"))?;
            Some(Arc::new(Condition::parse(&json, Claims::Allowed).map_err(|e| format!("filter: {e}"))?))
        }
    };
    let operations = match tf.operations {
        None => Operations::ALL,
        Some(list) if list.is_empty() => return Err("`operations` is empty: leave the table out instead".into()),
        Some(list) => Operations {
            rows: list.contains(&OperationFile::Rows),
            by_key: list.contains(&OperationFile::ByKey),
            aggregate: list.contains(&OperationFile::Aggregate),
            changes: list.contains(&OperationFile::Changes),
        },
    };
    Ok(TableRule { columns, filter, operations })
}

#[cfg(test)]
mod tests;
