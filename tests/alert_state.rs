//! Alert state restored from the app database after a restart (real PostgreSQL): what was
//! decided beyond the checkpoint the replica resumes from is dropped and decided again, for
//! transactions the source delivers again and for time-driven transitions decided on a
//! replica beyond it, so the recorded history stays one chain per instance. A cluster's
//! follower reads the state without dropping anything, and a leader whose epoch a newer one
//! has claimed writes nothing.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use opslive::alert::engine::{AlertState, Cause, Transition};
use opslive::alert::rule::{AlertRuleDefinition, RowCondition};
use opslive::change::Position;
use opslive::config::SecretUrl;
use opslive::store::Store;
use support::PgServer;

fn transition(rule: opslive::alert::rule::RuleId, from: AlertState, to: AlertState, cause: Cause) -> Transition {
    Transition {
        rule,
        instance: "[\"7\"]".into(),
        labels: BTreeMap::new(),
        from,
        to,
        cause,
        value: None,
        before: None,
        after: None,
        summary: "order 7".into(),
        basis: Vec::new(),
    }
}

fn tx(position: u64) -> Cause {
    Cause::Transaction { source: Arc::from("shop"), position: Position(position), commit_ts: position as i64 }
}

async fn store(pg: &PgServer) -> Store {
    Store::open(&SecretUrl::parse(&pg.url("opslive")).unwrap(), None).await.unwrap()
}

async fn rule(store: &Store, name: &str) -> opslive::alert::rule::RuleId {
    let def = AlertRuleDefinition {
        name: name.into(),
        severity: Default::default(),
        labels: BTreeMap::new(),
        summary: None,
        kpi: None,
        rows: Some(RowCondition {
            table: "orders".into(),
            filter: serde_json::json!({ "status": { "eq": "pending" } }),
            label_columns: Vec::new(),
        }),
        for_: None,
        keep_firing_for: None,
        max_instances: None,
    };
    store.insert_alert_rule(&def, None).await.unwrap().id
}

/// The states recorded for the rule's instance, oldest first.
async fn chain(store: &Store, rule: opslive::alert::rule::RuleId) -> Vec<(AlertState, AlertState)> {
    let filter = opslive::store::alerts::HistoryFilter { rule: Some(rule), limit: 100, ..Default::default() };
    let mut h = store.alert_history(&filter).await.unwrap();
    h.reverse();
    h.into_iter().map(|r| (r.transition.from, r.transition.to)).collect()
}

#[tokio::test]
async fn a_time_driven_transition_decided_beyond_the_checkpoint_is_decided_again() {
    let pg = PgServer::start().await;
    let store = store(&pg).await;
    let checkpoint = [("shop".to_string(), Position(100))];

    // Fired by time on a replica at 200 (past the checkpoint at 100), then resolved by the
    // transaction at 300: both lie beyond, and the instance was normal at the checkpoint.
    let beyond = rule(&store, "beyond").await;
    let mut fired = transition(beyond, AlertState::Normal, AlertState::Firing, Cause::Due { at: 5 });
    fired.basis = vec![(Arc::from("shop"), Position(200))];
    let resolved = transition(beyond, AlertState::Firing, AlertState::Resolved, tx(300));
    // Fired by time on a replica at 50, within the checkpoint: it stands.
    let within = rule(&store, "within").await;
    let mut kept = transition(within, AlertState::Normal, AlertState::Firing, Cause::Due { at: 5 });
    kept.basis = vec![(Arc::from("shop"), Position(50))];
    let later = transition(within, AlertState::Firing, AlertState::Resolved, tx(300));
    store.record_alerts(&[fired, resolved, kept, later], &[], &[], None).await.unwrap();

    let open = store.load_alert_state(&checkpoint).await.unwrap();
    let open: Vec<_> = open.iter().map(|i| (i.rule, i.state)).collect();
    assert_eq!(open, vec![(within, AlertState::Firing)], "only what was decided up to the checkpoint is restored");
    assert_eq!(chain(&store, beyond).await, vec![], "decided beyond the checkpoint: dropped, to be decided again");
    assert_eq!(chain(&store, within).await, vec![(AlertState::Normal, AlertState::Firing)]);

    // The replay decides the instance again from the transaction that made the order pending:
    // one chain, nothing to the same state twice.
    store
        .record_alerts(
            &[
                transition(beyond, AlertState::Normal, AlertState::Firing, tx(150)),
                transition(beyond, AlertState::Firing, AlertState::Resolved, tx(300)),
                transition(within, AlertState::Firing, AlertState::Resolved, tx(300)),
            ],
            &[],
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        chain(&store, beyond).await,
        vec![(AlertState::Normal, AlertState::Firing), (AlertState::Firing, AlertState::Resolved)]
    );

    // A restart from a checkpoint past everything restores it all as it is.
    let open = store.load_alert_state(&[("shop".to_string(), Position(1_000))]).await.unwrap();
    assert!(open.is_empty(), "both resolved: {open:?}");
    assert_eq!(chain(&store, within).await.len(), 2);
    assert_eq!(chain(&store, beyond).await.len(), 2);
}

/// A leader's writes carry its epoch and are refused once a newer epoch has claimed the
/// cluster; a claim never goes back; a follower's read drops nothing the leader decided.
#[tokio::test]
async fn a_write_from_an_epoch_a_newer_leader_claimed_is_refused_and_stores_nothing() {
    use opslive::store::StoreError;
    use opslive::store::fence::Fence;
    let pg = PgServer::start().await;
    let store = store(&pg).await;
    let sql = pg.connect("opslive").await;
    let first = Fence { cluster: "ops".into(), epoch: 1 };
    let second = Fence { cluster: "ops".into(), epoch: 2 };
    store.claim_epoch(&first).await.unwrap();
    let rule = rule(&store, "fenced").await;
    let mut fired = transition(rule, AlertState::Normal, AlertState::Firing, Cause::Due { at: 5 });
    fired.basis = vec![(Arc::from("shop"), Position(200))];
    store.record_alerts(std::slice::from_ref(&fired), &[], &[], Some(&first)).await.unwrap();
    assert_eq!(epochs(&sql).await, vec![Some(1)]);

    // A follower starting from a checkpoint before the leader's decision reads it as it is.
    let open = store.read_alert_state().await.unwrap();
    assert_eq!(open.iter().map(|i| (i.rule, i.state)).collect::<Vec<_>>(), vec![(rule, AlertState::Firing)]);
    assert_eq!(chain(&store, rule).await, vec![(AlertState::Normal, AlertState::Firing)], "nothing dropped");

    // Epoch 2 claims the cluster: epoch 1's transition, notification and history are refused.
    store.claim_epoch(&second).await.unwrap();
    let resolved = transition(rule, AlertState::Firing, AlertState::Resolved, tx(300));
    let refused = store.record_alerts(std::slice::from_ref(&resolved), &[], &[], Some(&first)).await;
    assert!(matches!(refused, Err(StoreError::Fenced { ours: 1, current: 2 })), "{refused:?}");
    assert_eq!(chain(&store, rule).await, vec![(AlertState::Normal, AlertState::Firing)], "nothing of epoch 1 stored");
    let kpi: i64 =
        sql.query_one("INSERT INTO kpis (name, definition) VALUES ('k', '{}') RETURNING id", &[]).await.unwrap().get(0);
    let rollup = opslive::kpi::history::Rollup {
        kpi: opslive::kpi::KpiId(kpi),
        group: String::new(),
        minute: 60_000_000,
        last: "1".into(),
        last_value: Some(1.0),
        min: Some(1.0),
        max: Some(1.0),
        order: 1,
    };
    let refused = store.record_rollups(std::slice::from_ref(&rollup), Some(&first)).await;
    assert!(matches!(refused, Err(StoreError::Fenced { .. })), "{refused:?}");
    let rows: i64 = sql.query_one("SELECT count(*) FROM kpi_history", &[]).await.unwrap().get(0);
    assert_eq!(rows, 0);
    let claim = store.mark_sending(&[1], Some(&first)).await;
    assert!(matches!(claim, Err(StoreError::Fenced { .. })), "a send claimed under epoch 1: {claim:?}");
    let stale = store.claim_epoch(&first).await;
    assert!(matches!(stale, Err(StoreError::Fenced { ours: 1, current: 2 })), "a claim never goes back: {stale:?}");

    // Epoch 2 writes; a lone instance (no fence) is never refused.
    store.record_alerts(&[resolved], &[], &[], Some(&second)).await.unwrap();
    store.record_rollups(&[rollup], Some(&second)).await.unwrap();
    assert_eq!(epochs(&sql).await, vec![Some(1), Some(2)]);
    let history: Option<i64> = sql.query_one("SELECT epoch FROM kpi_history", &[]).await.unwrap().get(0);
    assert_eq!(history, Some(2));
    let again = transition(rule, AlertState::Normal, AlertState::Firing, tx(400));
    store.record_alerts(&[again], &[], &[], None).await.unwrap();
    assert_eq!(epochs(&sql).await, vec![Some(1), Some(2), None]);
}

/// The epoch each recorded transition carries, oldest first.
async fn epochs(sql: &tokio_postgres::Client) -> Vec<Option<i64>> {
    let rows = sql.query("SELECT epoch FROM alert_transitions ORDER BY id", &[]).await.unwrap();
    rows.iter().map(|r| r.get::<_, Option<i64>>(0)).collect()
}
