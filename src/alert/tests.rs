//! The KPI and alert engines together, without I/O: transactions move a KPI across a
//! threshold and rows in and out of a row rule; time is passed explicitly.

use std::sync::Arc;

use serde_json::json;

use super::engine::{Ack, AlertSet, AlertState, Cause, Transition};
use super::rule::{AlertRuleDefinition, RuleId, bind, bind_rows};
use crate::change::{Change, Image, Key, Op, Position, SourceEvent, Transaction};
use crate::kpi::{KpiBoard, KpiDefinition, KpiEntry, KpiId, KpiRecord, KpiSet, compile_kpi};
use crate::policy::Policy;
use crate::registry::{ColumnType, TableSchema, fixture};
use crate::replica::{Applied, Replica};
use crate::value::Value;

// Columns: 0 id int8 (key), 1 qty int4, 2 status text.
fn schema() -> Arc<TableSchema> {
    fixture::schema("orders", &[("id", ColumnType::Int8), ("qty", ColumnType::Int4), ("status", ColumnType::Text)])
}

use fixture::replica;

/// The world of one test: replica, KPI engine and board, alert engine.
struct World {
    schema: Arc<TableSchema>,
    replica: Replica,
    kpis: KpiSet,
    board: KpiBoard,
    alerts: AlertSet,
    position: u64,
}

impl World {
    fn new() -> World {
        let schema = schema();
        let replica = replica(&schema);
        World { schema, replica, kpis: KpiSet::new(), board: KpiBoard::default(), alerts: AlertSet::new(), position: 1 }
    }

    fn kpi(&mut self, id: i64, def: serde_json::Value) {
        let def: KpiDefinition = serde_json::from_value(def).expect("definition");
        let compiled = compile_kpi(&def, std::slice::from_ref(&self.schema), &Policy::deny_all()).expect("binds");
        self.kpis.insert(KpiId(id), compiled.clone(), &self.replica, 0);
        let record = KpiRecord {
            id: KpiId(id),
            definition: def,
            created_by: None,
            updated_by: None,
            created_at: 0,
            updated_at: 0,
            builtin: None,
        };
        let value = self.kpis.value(KpiId(id)).cloned().expect("value");
        let entry = KpiEntry {
            record: Arc::new(record),
            compiled: Some(Arc::new(compiled)),
            value,
            seq: 1,
            as_of: Default::default(),
        };
        self.board.kpis.insert(KpiId(id), Arc::new(entry));
    }

    fn rule(&mut self, id: i64, def: serde_json::Value, at: i64) -> Vec<Transition> {
        let def: AlertRuleDefinition = serde_json::from_value(def).expect("rule");
        let rows = def.rows.as_ref().map(|r| bind_rows(r, std::slice::from_ref(&self.schema)).expect("rows bind"));
        let rule = bind(RuleId(id), def, rows).expect("binds");
        self.alerts.set_rule(rule, &self.board, &self.replica, &Cause::Due { at })
    }

    /// Commits `rows` (id, qty, status; `None`: delete) at `commit_ts`, runs KPIs and alerts.
    fn commit(&mut self, commit_ts: i64, rows: &[(i64, Option<(i32, &str)>)]) -> (Vec<Transition>, Position) {
        self.position += 10;
        let table = self.schema.id();
        let changes = rows
            .iter()
            .map(|(id, row)| {
                let key = Key(vec![Value::Int8(*id)].into());
                match row {
                    Some((qty, status)) => {
                        let exists = self.replica.table(table).and_then(|t| t.get(&key)).is_some();
                        let values = vec![Value::Int8(*id), Value::Int4(*qty), Value::text(status)];
                        Change {
                            table,
                            op: if exists { Op::Update } else { Op::Insert },
                            key,
                            before: None,
                            after: Some(Image::full(values)),
                        }
                    }
                    None => Change { table, op: Op::Delete, key, before: None, after: None },
                }
            })
            .collect();
        let position = Position(self.position);
        let tx = Transaction {
            source: Arc::from("s"),
            position,
            commit_ts,
            xid: self.position,
            changes,
            table_events: vec![],
        };
        let applied: Applied = self.replica.apply(&SourceEvent::Transaction(tx));
        let outcome = self.kpis.apply(&applied, &self.replica, commit_ts);
        let touched = outcome.touched.clone();
        let mut changed = Vec::new();
        for id in outcome.changed {
            let value = self.kpis.value(id).cloned().expect("value");
            if let Some(mut e) = self.board.kpis.get(&id).map(|e| KpiEntry::clone(e)) {
                e.value = value.clone();
                self.board.kpis.insert(id, Arc::new(e));
            }
            changed.push((id, value));
        }
        let cause = Cause::Transaction { source: Arc::from("s"), position, commit_ts };
        let mut out = self.alerts.advance(commit_ts, &self.replica);
        out.extend(self.alerts.on_touched(&touched, &cause));
        out.extend(self.alerts.on_kpis(&changed, &self.board, &cause));
        out.extend(self.alerts.on_rows(&applied, &self.replica, &cause));
        // The runtime sleeps until `wake_at`: never past anything due.
        let (wake, due) = (self.alerts.wake_at(), self.alerts.next_due());
        assert!(due.is_none_or(|d| wake.is_some_and(|w| w <= d)), "wakes at {wake:?}, after {due:?} is due");
        (out, position)
    }
}

fn states(ts: &[Transition]) -> Vec<(AlertState, AlertState)> {
    ts.iter().map(|t| (t.from, t.to)).collect()
}

#[test]
fn a_kpi_threshold_fires_on_the_transaction_that_crosses_it_and_resolves() {
    let mut w = World::new();
    w.kpi(1, json!({ "name": "pending", "table": "orders", "aggregate": "COUNT", "filter": { "status": { "eq": "pending" } } }));
    assert!(w.rule(7, json!({ "name": "too many pending", "kpi": { "kpi": 1, "above": 2 } }), 0).is_empty());

    let (t, _) = w.commit(1_000, &[(1, Some((1, "pending"))), (2, Some((1, "pending")))]);
    assert!(t.is_empty(), "2 is not above 2: {t:?}");
    let (t, _) = w.commit(2_000, &[(3, Some((1, "paid")))]);
    assert!(t.is_empty(), "a row outside the filter changes nothing");
    let (t, crossing) = w.commit(3_000, &[(4, Some((1, "pending")))]);
    assert_eq!(states(&t), vec![(AlertState::Normal, AlertState::Firing)]);
    assert_eq!(t[0].cause, Cause::Transaction { source: Arc::from("s"), position: crossing, commit_ts: 3_000 });
    assert_eq!(t[0].value.as_deref(), Some("3"));
    assert!(t[0].summary.contains("too many pending") && t[0].summary.contains('3'), "{}", t[0].summary);

    let (t, _) = w.commit(4_000, &[(5, Some((1, "pending")))]);
    assert!(t.is_empty(), "still firing: no new transition");
    let (t, _) = w.commit(5_000, &[(4, Some((1, "paid"))), (5, None)]);
    assert_eq!(states(&t), vec![(AlertState::Firing, AlertState::Resolved)]);
    assert!(w.alerts.instances().next().is_none());
}

#[test]
fn for_holds_a_breach_pending_until_it_has_lasted_and_a_short_one_never_fires() {
    let mut w = World::new();
    w.kpi(1, json!({ "name": "qty", "table": "orders", "aggregate": "SUM", "column": "qty" }));
    w.rule(1, json!({ "name": "big", "kpi": { "kpi": 1, "above": 10 }, "for": "PT1M" }), 0);

    let (t, _) = w.commit(1_000_000, &[(1, Some((20, "x")))]);
    assert_eq!(states(&t), vec![(AlertState::Normal, AlertState::Pending)]);
    assert_eq!(w.alerts.next_due(), Some(61_000_000));
    assert!(w.alerts.advance(60_999_999, &w.replica).is_empty());
    let t = w.alerts.advance(61_000_000, &w.replica);
    assert_eq!(states(&t), vec![(AlertState::Pending, AlertState::Firing)]);
    assert_eq!(t[0].cause, Cause::Due { at: 61_000_000 }, "a time-driven transition is caused by its due time");

    // A breach shorter than `for` goes back to normal without firing.
    let (t, _) = w.commit(70_000_000, &[(1, Some((1, "x")))]);
    assert_eq!(states(&t), vec![(AlertState::Firing, AlertState::Resolved)]);
    let (t, _) = w.commit(80_000_000, &[(1, Some((30, "x")))]);
    assert_eq!(states(&t), vec![(AlertState::Normal, AlertState::Pending)]);
    let (t, _) = w.commit(90_000_000, &[(1, Some((2, "x")))]);
    assert_eq!(states(&t), vec![(AlertState::Pending, AlertState::Normal)]);
    assert_eq!(w.alerts.next_due(), None);
    // The cancelled due time still bounds the runtime's wake-up: one early wake-up, which
    // moves nothing and leaves nothing to wake for.
    assert_eq!(w.alerts.wake_at(), Some(140_000_000));
    assert!(w.alerts.advance(140_000_000, &w.replica).is_empty());
    assert_eq!(w.alerts.wake_at(), None);
}

#[test]
fn keep_firing_for_holds_a_cleared_alert_and_a_new_breach_continues_it() {
    let mut w = World::new();
    w.kpi(1, json!({ "name": "qty", "table": "orders", "aggregate": "MAX", "column": "qty" }));
    w.rule(1, json!({ "name": "big", "kpi": { "kpi": 1, "above": 10 }, "keepFiringFor": "PT30S" }), 0);
    let (t, _) = w.commit(1_000_000, &[(1, Some((20, "x")))]);
    assert_eq!(states(&t), vec![(AlertState::Normal, AlertState::Firing)]);
    let (t, _) = w.commit(2_000_000, &[(1, Some((5, "x")))]);
    assert!(t.is_empty(), "keeps firing: {t:?}");
    let (t, _) = w.commit(20_000_000, &[(1, Some((15, "x")))]);
    assert!(t.is_empty());
    assert_eq!(w.alerts.next_due(), None, "breaching again cancels the pending resolve");
    w.commit(25_000_000, &[(1, Some((1, "x")))]);
    // The next commit after the keep-firing time resolves it first, by its due time.
    let (t, _) = w.commit(60_000_000, &[(2, Some((1, "x")))]);
    assert_eq!(states(&t), vec![(AlertState::Firing, AlertState::Resolved)]);
    assert_eq!(t[0].cause, Cause::Due { at: 55_000_000 });
}

#[test]
fn grouped_kpis_fire_one_instance_per_group() {
    let mut w = World::new();
    w.kpi(1, json!({ "name": "by status", "table": "orders", "aggregate": "COUNT", "groupBy": ["status"] }));
    w.rule(1, json!({ "name": "busy", "kpi": { "kpi": 1, "above": 1 }, "labels": { "team": "ops" } }), 0);
    let (t, _) = w.commit(1, &[(1, Some((1, "a"))), (2, Some((1, "a"))), (3, Some((1, "b")))]);
    assert_eq!(states(&t), vec![(AlertState::Normal, AlertState::Firing)]);
    assert_eq!(t[0].labels.get("status").map(String::as_str), Some("a"));
    assert_eq!(t[0].labels.get("team").map(String::as_str), Some("ops"));
    let (t, _) = w.commit(2, &[(4, Some((1, "b")))]);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].labels.get("status").map(String::as_str), Some("b"));
    // Group `a` disappears entirely: its instance resolves.
    let (t, _) = w.commit(3, &[(1, None), (2, None)]);
    assert_eq!(states(&t), vec![(AlertState::Firing, AlertState::Resolved)]);
    assert_eq!(t[0].labels.get("status").map(String::as_str), Some("a"));
}

#[test]
fn row_rules_fire_and_resolve_per_row_with_the_row_as_provenance() {
    let mut w = World::new();
    w.commit(1, &[(1, Some((0, "open")))]);
    let t = w.rule(
        3,
        json!({ "name": "stuck", "rows": { "table": "orders", "filter": { "status": { "eq": "open" } }, "labelColumns": ["status"] },
                "summary": "order {{id}} is {{status}}" }),
        5,
    );
    assert_eq!(states(&t), vec![(AlertState::Normal, AlertState::Firing)], "a row already matching fires at once");
    assert_eq!(t[0].summary, "order 1 is open");
    let (t, p) = w.commit(10, &[(2, Some((0, "open"))), (3, Some((0, "done")))]);
    assert_eq!(states(&t), vec![(AlertState::Normal, AlertState::Firing)]);
    assert_eq!(t[0].instance, "[\"2\"]");
    assert_eq!(t[0].cause, Cause::Transaction { source: Arc::from("s"), position: p, commit_ts: 10 });
    assert_eq!(t[0].after, Some(json!({ "id": "2", "status": "open" })), "only the columns the rule reads");
    let (t, _) = w.commit(20, &[(1, Some((0, "done")))]);
    assert_eq!(states(&t), vec![(AlertState::Firing, AlertState::Resolved)]);
    assert_eq!(t[0].before, Some(json!({ "id": "1", "status": "open" })));
    assert_eq!(t[0].after, Some(json!({ "id": "1", "status": "done" })));
    let (t, _) = w.commit(30, &[(2, None)]);
    assert_eq!(states(&t), vec![(AlertState::Firing, AlertState::Resolved)], "a deleted row resolves");
}

/// Rules per value of a column (a rule per warehouse, per queue) are found through their
/// equality: each judges only the rows of its value, and a row that moves from one value to
/// another leaves one rule's condition and meets the other's in the same transaction.
#[test]
fn rules_per_value_judge_only_their_rows_and_follow_a_row_from_one_value_to_another() {
    let mut w = World::new();
    let rule = |status: serde_json::Value| json!({ "name": "per status", "rows": { "table": "orders", "filter": { "status": status } } });
    w.rule(1, rule(json!({ "eq": "new" })), 0);
    w.rule(2, rule(json!({ "eq": "open" })), 0);
    w.rule(3, rule(json!({ "in": ["new", "open"] })), 0);
    w.rule(4, rule(json!({ "neq": "done" })), 0);
    let fired = |t: &[Transition]| {
        let mut v: Vec<(i64, AlertState, AlertState)> = t.iter().map(|t| (t.rule.0, t.from, t.to)).collect();
        v.sort_by_key(|(r, ..)| *r);
        v
    };
    use AlertState::{Firing, Normal, Resolved};
    let (t, _) = w.commit(10, &[(1, Some((0, "new"))), (2, Some((0, "done")))]);
    assert_eq!(fired(&t), vec![(1, Normal, Firing), (3, Normal, Firing), (4, Normal, Firing)]);
    let (t, _) = w.commit(20, &[(1, Some((0, "open")))]);
    assert_eq!(fired(&t), vec![(1, Firing, Resolved), (2, Normal, Firing)], "rules 3 and 4 still hold for the row");
    let (t, _) = w.commit(30, &[(2, Some((0, "open"))), (1, Some((0, "done")))]);
    assert_eq!(
        fired(&t),
        vec![
            (2, Normal, Firing),
            (2, Firing, Resolved),
            (3, Normal, Firing),
            (3, Firing, Resolved),
            (4, Normal, Firing),
            (4, Firing, Resolved)
        ]
    );
    let (t, _) = w.commit(40, &[(2, None)]);
    assert_eq!(fired(&t), vec![(2, Firing, Resolved), (3, Firing, Resolved), (4, Firing, Resolved)]);
}

#[test]
fn acknowledgement_is_kept_until_the_instance_resolves_and_restored_state_does_not_fire_again() {
    let mut w = World::new();
    w.kpi(1, json!({ "name": "n", "table": "orders", "aggregate": "COUNT" }));
    w.rule(1, json!({ "name": "any", "kpi": { "kpi": 1, "above": 0 } }), 0);
    w.commit(1, &[(1, Some((1, "x")))]);
    let ack = Ack { by: Some("alice".into()), at: 2, note: Some("looking".into()) };
    assert!(w.alerts.acknowledge(RuleId(1), "", ack.clone()).is_ok());
    assert!(w.alerts.acknowledge(RuleId(1), "nope", ack.clone()).is_err());
    w.commit(3, &[(2, Some((1, "x")))]);
    assert_eq!(w.alerts.instance(RuleId(1), "").and_then(|i| i.acknowledged.clone()), Some(ack));

    // A restart: the engine starts from the recorded instances, evaluates the rule again on
    // the same data, and records nothing new.
    let saved: Vec<_> = w.alerts.instances().cloned().collect();
    w.alerts = AlertSet::new();
    w.alerts.restore(saved);
    let t = w.rule(1, json!({ "name": "any", "kpi": { "kpi": 1, "above": 0 } }), 4);
    assert!(t.is_empty(), "{t:?}");
    let (t, _) = w.commit(5, &[(1, None), (2, None)]);
    assert_eq!(states(&t), vec![(AlertState::Firing, AlertState::Resolved)]);
}

#[test]
fn bad_rules_are_refused_naming_the_field() {
    let bad = |def: serde_json::Value| {
        let def: AlertRuleDefinition = serde_json::from_value(def).expect("parses");
        bind(RuleId(1), def, None).expect_err("refused").field
    };
    assert_eq!(bad(json!({ "name": "x" })), "kpi");
    assert_eq!(bad(json!({ "name": "x", "kpi": { "kpi": 1 } })), "kpi");
    assert_eq!(bad(json!({ "name": "x", "kpi": { "kpi": 1, "above": 1, "below": 0 } })), "kpi");
    assert_eq!(bad(json!({ "name": "x", "kpi": { "kpi": 1, "outside": { "low": 2, "high": 1 } } })), "kpi.outside");
    assert_eq!(bad(json!({ "name": "x", "kpi": { "kpi": 1, "above": 1 }, "for": "soon" })), "for");
    assert_eq!(bad(json!({ "name": "", "kpi": { "kpi": 1, "above": 1 } })), "name");
    let rows = super::rule::RowCondition {
        table: "orders".into(),
        filter: json!({ "nope": { "eq": 1 } }),
        label_columns: vec![],
    };
    assert_eq!(bind_rows(&rows, &[schema()]).expect_err("unknown column").field, "rows.filter");
}

#[test]
fn a_restored_pending_instance_fires_at_the_same_due_time_as_before_the_restart() {
    let mut w = World::new();
    w.kpi(1, json!({ "name": "qty", "table": "orders", "aggregate": "SUM", "column": "qty" }));
    w.rule(1, json!({ "name": "big", "kpi": { "kpi": 1, "above": 10 }, "for": "PT1M" }), 0);
    w.commit(1_000_000, &[(1, Some((20, "x")))]);
    let saved: Vec<_> = w
        .alerts
        .instances()
        .cloned()
        .map(|mut i| {
            // As the store gives it back: the due time is not recorded.
            i.due = None;
            i
        })
        .collect();
    w.alerts = AlertSet::new();
    w.alerts.restore(saved);
    assert!(w.rule(1, json!({ "name": "big", "kpi": { "kpi": 1, "above": 10 }, "for": "PT1M" }), 2_000_000).is_empty());
    let t = w.alerts.advance(120_000_000, &w.replica);
    assert_eq!(states(&t), vec![(AlertState::Pending, AlertState::Firing)]);
    assert_eq!(t[0].cause, Cause::Due { at: 61_000_000 }, "same cause as the run before the restart: recorded once");
}

#[test]
fn a_no_data_rule_fires_when_the_kpis_rows_go_quiet_and_resolves_when_data_returns() {
    let mut w = World::new();
    w.kpi(1, json!({ "name": "pending", "table": "orders", "aggregate": "COUNT", "filter": { "status": { "eq": "pending" } } }));
    w.rule(1, json!({ "name": "quiet", "kpi": { "kpi": 1, "noDataFor": "PT10S" } }), 0);
    assert_eq!(w.alerts.next_due(), Some(10_000_000));
    let (t, _) = w.commit(5_000_000, &[(1, Some((1, "pending")))]);
    assert!(t.is_empty());
    assert_eq!(w.alerts.next_due(), Some(15_000_000), "data moved the deadline");
    let (t, _) = w.commit(9_000_000, &[(2, Some((1, "paid")))]);
    assert!(t.is_empty(), "a row outside the KPI's filter is not its data");
    assert!(w.alerts.advance(14_999_999, &w.replica).is_empty());
    let t = w.alerts.advance(20_000_000, &w.replica);
    assert_eq!(states(&t), vec![(AlertState::Normal, AlertState::Firing)]);
    assert_eq!(t[0].cause, Cause::Due { at: 15_000_000 });
    assert!(t[0].summary.contains("no data"), "{}", t[0].summary);
    let (t, _) = w.commit(21_000_000, &[(1, Some((2, "pending")))]);
    assert_eq!(
        states(&t),
        vec![(AlertState::Firing, AlertState::Resolved)],
        "an update that keeps the count still is data"
    );
}

#[test]
fn a_rule_opens_at_most_its_cap_and_counts_the_rest() {
    let mut w = World::new();
    w.rule(1, json!({ "name": "open", "rows": { "table": "orders", "filter": { "status": { "eq": "open" } } }, "maxInstances": 2 }), 0);
    let (t, _) =
        w.commit(1, &[(1, Some((0, "open"))), (2, Some((0, "open"))), (3, Some((0, "open"))), (4, Some((0, "open")))]);
    assert_eq!(t.len(), 2, "{t:?}");
    assert_eq!(w.alerts.overflow(RuleId(1)), 2);
    // A row beyond the cap that stops breaching leaves the count; one that was open resolves.
    let (t, _) = w.commit(2, &[(4, Some((0, "done"))), (1, Some((0, "done")))]);
    assert_eq!(states(&t), vec![(AlertState::Firing, AlertState::Resolved)]);
    assert_eq!(w.alerts.overflow(RuleId(1)), 1);
    let def: AlertRuleDefinition =
        serde_json::from_value(json!({ "name": "x", "kpi": { "kpi": 1, "above": 1 }, "maxInstances": 0 }))
            .expect("parses");
    assert_eq!(bind(RuleId(1), def, None).expect_err("refused").field, "maxInstances");
}

#[test]
fn a_row_rule_relative_to_now_fires_with_no_write_at_the_instant_it_came_due() {
    let schema = fixture::schema(
        "tickets",
        &[("id", ColumnType::Int8), ("status", ColumnType::Text), ("openedAt", ColumnType::TimestampTz)],
    );
    let mut replica = replica(&schema);
    let minute = 60_000_000i64;
    let ticket = |i: i64, status: &str, opened: i64| Change {
        table: schema.id(),
        op: Op::Insert,
        key: Key(vec![Value::Int8(i)].into()),
        before: None,
        after: Some(Image(vec![Some(Value::Int8(i)), Some(Value::text(status)), Some(Value::TimestampTz(opened))])),
    };
    let tx = Transaction {
        source: Arc::from("s"),
        position: Position(10),
        commit_ts: 0,
        xid: 1,
        changes: vec![ticket(1, "open", 0), ticket(2, "open", 10 * minute)],
        table_events: vec![],
    };
    replica.apply(&SourceEvent::Transaction(tx));
    let def: AlertRuleDefinition = serde_json::from_value(json!({
        "name": "waiting", "rows": { "table": "tickets",
            "filter": { "status": { "eq": "open" }, "openedAt": { "lt": { "ago": "PT30M" } } } }
    }))
    .expect("rule");
    let rows = def.rows.as_ref().map(|r| bind_rows(r, std::slice::from_ref(&schema)).expect("binds"));
    let mut alerts = AlertSet::new();
    let t = alerts.set_rule(
        bind(RuleId(1), def, rows).expect("binds"),
        &KpiBoard::default(),
        &replica,
        &Cause::Due { at: 20 * minute },
    );
    assert!(t.is_empty(), "nothing is 30 minutes old yet: {t:?}");
    assert_eq!(alerts.next_due(), Some(30 * minute + 1));
    // The timer fires late: the transition is still dated when the ticket turned 30 minutes old.
    let t = alerts.advance(35 * minute, &replica);
    assert_eq!(states(&t), vec![(AlertState::Normal, AlertState::Firing)]);
    assert_eq!(t[0].cause, Cause::Due { at: 30 * minute + 1 });
    assert_eq!(t[0].instance, "[\"1\"]");
    assert_eq!(alerts.next_due(), Some(40 * minute + 1));
    let t = alerts.advance(41 * minute, &replica);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].instance, "[\"2\"]");
    assert_eq!(alerts.next_due(), None, "nothing else can change by time alone");
}

#[test]
fn restored_instances_stand_while_what_their_rules_read_is_not_known() {
    let mut w = World::new();
    w.commit(1_000, &[(7, Some((1, "late")))]);
    w.kpi(
        1,
        json!({ "name": "late", "table": "orders", "aggregate": "COUNT", "filter": { "status": { "eq": "late" } } }),
    );
    let rows = json!({ "name": "each late", "rows": { "table": "orders", "filter": { "status": { "eq": "late" } } } });
    let kpi = json!({ "name": "any late", "kpi": { "kpi": 1, "above": 0 } });
    assert_eq!(states(&w.rule(1, rows.clone(), 2_000)), [(AlertState::Normal, AlertState::Firing)]);
    assert_eq!(states(&w.rule(2, kpi.clone(), 2_000)), [(AlertState::Normal, AlertState::Firing)]);
    let open: Vec<_> = w.alerts.instances().cloned().collect();

    // A restart: the instances come back from the store while the table is still being copied
    // and the KPI has no value yet. Not knowing clears nothing.
    let loaded = std::mem::replace(&mut w.replica, Replica::new());
    let board = std::mem::take(&mut w.board);
    w.alerts = AlertSet::new();
    w.alerts.restore(open);
    assert!(w.rule(1, rows.clone(), 3_000).is_empty());
    assert!(w.rule(2, kpi.clone(), 3_000).is_empty());
    assert_eq!(w.alerts.instances().filter(|i| i.state == AlertState::Firing).count(), 2);

    // Once known, and still late: they go on firing, nothing is recorded again.
    w.replica = loaded;
    w.board = board;
    assert!(w.rule(1, rows, 4_000).is_empty());
    assert!(w.rule(2, kpi, 4_000).is_empty());
    assert_eq!(w.alerts.instances().filter(|i| i.state == AlertState::Firing).count(), 2);
}

#[test]
fn a_crossing_fires_on_the_transaction_that_crossed_and_resolves_after_keep_firing() {
    let mut w = World::new();
    w.kpi(1, json!({ "name": "qty", "table": "orders", "aggregate": "SUM", "column": "qty" }));
    let def = json!({ "name": "up", "kpi": { "kpi": 1, "crosses": { "value": 10, "direction": "UP" } }, "keepFiringFor": "PT1M" });
    assert!(w.rule(1, def, 0).is_empty(), "no crossing before a first change");
    let (t, _) = w.commit(1_000_000, &[(1, Some((5, "x")))]);
    assert!(t.is_empty(), "no value (a sum of no rows) → 5 does not reach 10");
    let (t, crossed) = w.commit(2_000_000, &[(2, Some((5, "x")))]);
    assert_eq!(states(&t), vec![(AlertState::Normal, AlertState::Firing)], "5 → 10 reaches 10 upwards");
    assert_eq!(t[0].cause, Cause::Transaction { source: Arc::from("s"), position: crossed, commit_ts: 2_000_000 });
    let (t, _) = w.commit(3_000_000, &[(3, Some((5, "x")))]);
    assert!(t.is_empty(), "10 → 15 is above the level, not a crossing; it keeps firing");
    assert_eq!(w.alerts.next_due(), Some(62_000_000), "resolves a minute after the crossing");
    let (t, _) = w.commit(4_000_000, &[(3, None), (2, None)]);
    assert!(t.is_empty(), "15 → 5 crosses downwards: not this rule's direction");
    let t = w.alerts.advance(62_000_000, &w.replica);
    assert_eq!(states(&t), vec![(AlertState::Firing, AlertState::Resolved)]);

    // Either way, and five minutes of firing when the rule does not say.
    let mut w = World::new();
    w.kpi(1, json!({ "name": "qty", "table": "orders", "aggregate": "SUM", "column": "qty" }));
    w.rule(1, json!({ "name": "any", "kpi": { "kpi": 1, "crosses": { "value": 10 } } }), 0);
    w.commit(1, &[(9, Some((0, "x")))]);
    let (t, _) = w.commit(1_000_000, &[(1, Some((20, "x")))]);
    assert_eq!(states(&t), vec![(AlertState::Normal, AlertState::Firing)], "0 → 20 crosses 10");
    let (t, _) = w.commit(2_000_000, &[(1, Some((3, "x")))]);
    assert!(t.is_empty(), "already firing from the upward crossing");
    assert_eq!(w.alerts.next_due(), Some(302_000_000), "the downward crossing extends it");
}

#[test]
fn a_change_rule_compares_with_the_value_a_window_ago_and_judges_again_as_the_window_moves() {
    let mut w = World::new();
    w.kpi(1, json!({ "name": "qty", "table": "orders", "aggregate": "SUM", "column": "qty" }));
    let def = json!({ "name": "surge", "kpi": { "kpi": 1, "change": { "over": "PT10M", "above": 50 } },
                      "summary": "rose {{change}} to {{value}}" });
    w.rule(1, def, 0);
    let minute = 60_000_000;
    w.commit(1, &[(9, Some((0, "x")))]);
    w.commit(minute, &[(1, Some((30, "x")))]);
    let (t, _) = w.commit(2 * minute, &[(2, Some((20, "x")))]);
    assert!(t.is_empty(), "0 → 50 within the window: not more than 50");
    let (t, p) = w.commit(3 * minute, &[(3, Some((1, "x")))]);
    assert_eq!(states(&t), vec![(AlertState::Normal, AlertState::Firing)], "51 more than 0 at minute 0");
    assert_eq!(t[0].cause, Cause::Transaction { source: Arc::from("s"), position: p, commit_ts: 3 * minute });
    assert_eq!(t[0].summary, "rose 51 to 51");
    // At minute 11 the window starts after the value 30 was reached (minute 1): 51 − 30 = 21.
    assert_eq!(w.alerts.next_due(), Some(11 * minute), "the window's start passes the first change");
    let t = w.alerts.advance(11 * minute, &w.replica);
    assert_eq!(states(&t), vec![(AlertState::Firing, AlertState::Resolved)]);
    assert_eq!(t[0].cause, Cause::Due { at: 11 * minute });

    // Falling: `below` a negative bound.
    let mut w = World::new();
    w.kpi(1, json!({ "name": "qty", "table": "orders", "aggregate": "SUM", "column": "qty" }));
    w.rule(1, json!({ "name": "drop", "kpi": { "kpi": 1, "change": { "over": "5m", "below": -10 } } }), 0);
    w.commit(minute, &[(1, Some((40, "x")))]);
    let (t, _) = w.commit(2 * minute, &[(1, Some((35, "x")))]);
    assert!(t.is_empty());
    let (t, _) = w.commit(7 * minute, &[(1, Some((25, "x")))]);
    assert!(t.is_empty(), "40 was five minutes ago at minute 6, 35 is the value then: -10 is not below -10");
    let (t, _) = w.commit(8 * minute, &[(1, Some((24, "x")))]);
    assert_eq!(states(&t), vec![(AlertState::Normal, AlertState::Firing)]);
}

#[test]
fn crossing_and_change_definitions_are_checked() {
    let check = |kpi: serde_json::Value| {
        let def: AlertRuleDefinition = serde_json::from_value(json!({ "name": "r", "kpi": kpi })).expect("parses");
        bind(RuleId(1), def, None).err().map(|e| e.to_string())
    };
    assert!(check(json!({ "kpi": 1, "crosses": { "value": 1 }, "above": 2 })).unwrap().contains("exactly one"));
    assert!(check(json!({ "kpi": 1, "change": { "over": "soon", "above": 2 } })).unwrap().contains("kpi.change.over"));
    assert!(check(json!({ "kpi": 1, "change": { "over": "PT0S", "above": 2 } })).unwrap().contains("longer than zero"));
    assert!(check(json!({ "kpi": 1, "change": { "over": "PT1M" } })).unwrap().contains("`above` or `below`"));
    assert!(check(json!({ "kpi": 1, "change": { "over": "PT1M", "above": 1, "below": -1 } })).is_some());
    assert!(check(json!({ "kpi": 1, "crosses": { "value": 3, "direction": "DOWN" } })).is_none());
}
