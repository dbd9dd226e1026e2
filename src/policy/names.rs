//! GraphQL names for tables and columns, shared by the schema and the policy file.
//!
//! The policy names columns the way GraphQL does (`warehouseId`, not `warehouse_id`), so that a
//! row filter in the policy reads exactly like the `where` an analyst types. Both sides derive
//! the names here, so they can never disagree.

use crate::registry::TableSchema;

/// The GraphQL field name of a column: snake_case becomes camelCase (`warehouse_id` →
/// `warehouseId`). `None` when the result is not a valid GraphQL name (a column called `1st`
/// or `größe`); such a column is left out of GraphQL.
pub fn field_name(column: &str) -> Option<String> {
    let mut out = String::with_capacity(column.len());
    for (i, part) in column.split('_').filter(|p| !p.is_empty()).enumerate() {
        if i == 0 {
            out.push_str(part);
        } else {
            let mut chars = part.chars();
            if let Some(first) = chars.next() {
                out.extend(first.to_uppercase());
                out.push_str(chars.as_str());
            }
        }
    }
    is_graphql_name(&out).then_some(out)
}

/// The GraphQL type name of a table: its (already unique) name in PascalCase
/// (`reconciliationBatches` → `ReconciliationBatches`, `stock_moves` → `StockMoves`).
pub fn type_name(table: &str) -> String {
    let camel = field_name(table).unwrap_or_else(|| table.to_string());
    let mut chars = camel.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => camel,
    }
}

/// The name of a table's root fields (`orders`, then `ordersByKey`, `ordersAggregate`).
pub fn root_field_name(table: &str) -> String {
    field_name(table).unwrap_or_else(|| table.to_string())
}

/// The enum value that names a column in `groupBy`: GraphQL enum values are conventionally
/// upper case (`warehouseId` → `WAREHOUSE_ID`).
pub fn enum_value(field: &str) -> String {
    let mut out = String::with_capacity(field.len() + 4);
    let mut previous_lower = false;
    for c in field.chars() {
        if c.is_uppercase() && previous_lower {
            out.push('_');
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        out.extend(c.to_uppercase());
    }
    out
}

/// The GraphQL names of a table's columns, in column order: columns whose name cannot be one,
/// or that would repeat an earlier column's name (`a_b` after `aB`), are left out.
pub fn column_fields(schema: &TableSchema) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::with_capacity(schema.columns.len());
    for (i, column) in schema.columns.iter().enumerate() {
        if let Some(name) = field_name(&column.name)
            && !out.iter().any(|(_, n)| *n == name)
        {
            out.push((i, name));
        }
    }
    out
}

/// `[_A-Za-z][_0-9A-Za-z]*`, not starting with `__` (reserved for introspection).
pub fn is_graphql_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    match bytes.next() {
        Some(b) if b == b'_' || b.is_ascii_alphabetic() => {}
        _ => return false,
    }
    !s.starts_with("__") && bytes.all(|b| b == b'_' || b.is_ascii_alphanumeric())
}

/// Root fields of the product itself (KPIs, alerts, the user's workspace), in every role's
/// schema beside the tables' own: a watched table whose fields would collide is refused at
/// start, so a later release cannot change what an existing query means.
pub const RESERVED_ROOT_FIELDS: [&str; 36] = [
    "kpi",
    "kpis",
    "kpiHistory",
    "alert",
    "alerts",
    "alertRules",
    "alertHistory",
    "silences",
    "savedQueries",
    "overviewLayout",
    "contactPoints",
    "notificationPolicy",
    "muteTimings",
    "notifications",
    "tokenRevocations",
    // Mutations.
    "revokeToken",
    "revokeSubject",
    "createKpi",
    "updateKpi",
    "deleteKpi",
    "createAlertRule",
    "updateAlertRule",
    "deleteAlertRule",
    "acknowledgeAlert",
    "createSilence",
    "expireSilence",
    "saveQuery",
    "deleteSavedQuery",
    "saveOverviewLayout",
    "createContactPoint",
    "updateContactPoint",
    "deleteContactPoint",
    "testContactPoint",
    "setNotificationPolicy",
    "setMuteTiming",
    "deleteMuteTiming",
];

/// Type names of the product's own GraphQL types.
pub const RESERVED_TYPES: [&str; 42] = [
    "Kpi",
    "ChangeKind",
    "ChangeOp",
    "TokenRevocation",
    "KpiGroup",
    "KpiInput",
    "KpiAggregate",
    "KpiViewInput",
    "KpiWindowInput",
    "KpiComparison",
    "AsOf",
    "Mutation",
    "Subscription",
    "Alert",
    "AlertRule",
    "AlertTransition",
    "AlertCause",
    "AlertSeverity",
    "AlertState",
    "AlertRuleInput",
    "AlertKpiConditionInput",
    "AlertBandInput",
    "AlertRowsInput",
    "AlertChangeInput",
    "AlertCrossingInput",
    "AlertDirection",
    "AlertsWhere",
    "Silence",
    "SilenceMatcher",
    "SilenceMatcherInput",
    "KpiHistoryPoint",
    "KpiSource",
    "SourceMeasure",
    "SavedQuery",
    "OverviewLayout",
    "ContactPoint",
    "ContactPointInput",
    "ContactPointKind",
    "ContactPointTest",
    "Notification",
    "NotificationWhere",
    "NotificationStatus",
];

/// The product name a table of this GraphQL name would collide with, if any: its root fields
/// (`x`, `xByKey`, `xAggregate`, `xPatches`) or its type name.
pub fn reserved_collision(table: &str) -> Option<String> {
    let field = root_field_name(table);
    let fields = [field.clone(), format!("{field}ByKey"), format!("{field}Aggregate"), format!("{field}Patches")];
    if let Some(f) = fields.iter().find(|f| RESERVED_ROOT_FIELDS.contains(&f.as_str())) {
        return Some(format!("root field `{f}`"));
    }
    let ty = type_name(table);
    RESERVED_TYPES.contains(&ty.as_str()).then(|| format!("type `{ty}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_become_camel_case() {
        assert_eq!(field_name("warehouse_id").as_deref(), Some("warehouseId"));
        assert_eq!(field_name("id").as_deref(), Some("id"));
        assert_eq!(field_name("first_response_at").as_deref(), Some("firstResponseAt"));
        assert_eq!(field_name("_private").as_deref(), Some("private"));
        assert_eq!(field_name("a__b").as_deref(), Some("aB"));
        assert_eq!(field_name("1st"), None);
        assert_eq!(field_name("größe"), None);
        assert_eq!(field_name("___"), None);
    }

    #[test]
    fn product_names_are_reserved() {
        assert_eq!(reserved_collision("kpis").as_deref(), Some("root field `kpis`"));
        assert_eq!(reserved_collision("alert_history").as_deref(), Some("root field `alertHistory`"));
        assert_eq!(reserved_collision("silences").as_deref(), Some("root field `silences`"));
        assert_eq!(reserved_collision("kpi_group").as_deref(), Some("type `KpiGroup`"));
        assert_eq!(reserved_collision("orders"), None);
        assert_eq!(reserved_collision("kpi_targets"), None);
    }

    #[test]
    fn tables_and_enum_values() {
        assert_eq!(type_name("orders"), "Orders");
        assert_eq!(type_name("reconciliationBatches"), "ReconciliationBatches");
        assert_eq!(type_name("stock_moves"), "StockMoves");
        assert_eq!(root_field_name("stock_moves"), "stockMoves");
        assert_eq!(enum_value("warehouseId"), "WAREHOUSE_ID");
        assert_eq!(enum_value("id"), "ID");
        assert_eq!(enum_value("line2Total"), "LINE2_TOTAL");
    }
}
