//! Alert state restored from the app database after a restart (real PostgreSQL): what was
//! decided beyond the checkpoint the replica resumes from is dropped and decided again, for
//! transactions the source delivers again and for time-driven transitions decided on a
//! replica beyond it, so the recorded history stays one chain per instance.

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
    store.record_alerts(&[fired, resolved, kept, later], &[], &[]).await.unwrap();

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
