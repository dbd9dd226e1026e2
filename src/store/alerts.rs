//! Alert rules, instances and transitions in the app database.
//!
//! Transitions are unique on (rule, instance, new state, cause): the alert runtime may write
//! the same transition again after a restart (its transaction is delivered again) and the
//! database keeps one. Instances and the transitions that moved them are written in one
//! database transaction, so the two never disagree.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::fence::Fence;
use super::{Store, StoreError};
use crate::alert::engine::{Ack, AlertState, Cause, Instance, Transition};
use crate::alert::rule::{AlertRuleDefinition, RuleId};
use crate::alert::silence::{Matcher, Silence};
use crate::change::Position;

/// A rule as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertRuleRecord {
    pub id: RuleId,
    pub definition: AlertRuleDefinition,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A recorded transition.
#[derive(Clone, Debug, PartialEq)]
pub struct TransitionRecord {
    pub id: i64,
    pub transition: Transition,
    pub recorded_at: i64,
}

/// What `alertHistory` may be narrowed to.
#[derive(Clone, Debug, Default)]
pub struct HistoryFilter {
    pub rule: Option<RuleId>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub limit: i64,
}

/// Each open instance: its last transition, with its acknowledgement.
const OPEN_STATE: &str = "WITH state AS ( \
               SELECT DISTINCT ON (t.rule_id, t.instance) t.rule_id, t.instance, t.labels, t.to_state, t.at, t.value, \
                 t.summary, t.row_after FROM alert_transitions t ORDER BY t.rule_id, t.instance, t.id DESC) \
             SELECT s.rule_id, s.instance, s.labels::text AS labels, s.to_state, s.at, s.value, s.summary, \
               s.row_after::text AS row_image, \
               i.acknowledged_by, i.acknowledged_at, i.ack_note, i.active_since \
             FROM state s JOIN alert_rules r ON r.id = s.rule_id \
             LEFT JOIN alert_instances i ON i.rule_id = s.rule_id AND i.instance = s.instance \
             WHERE s.to_state IN ('PENDING', 'FIRING')";

/// Instances from rows of [`OPEN_STATE`].
fn open_instances(rows: Vec<sqlx::postgres::PgRow>) -> Vec<Instance> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let state: String = row.get("to_state");
        let Some(state) = AlertState::parse(&state) else { continue };
        let labels: String = row.get("labels");
        let image: Option<String> = row.get("row_image");
        let since = micros(row.get("at"));
        let acknowledged_at: Option<DateTime<Utc>> = row.get("acknowledged_at");
        out.push(Instance {
            rule: RuleId(row.get("rule_id")),
            key: row.get("instance"),
            labels: serde_json::from_str(&labels).unwrap_or_default(),
            state,
            since,
            active_since: row.get::<Option<DateTime<Utc>>, _>("active_since").map_or(since, micros),
            // Re-derived from the rule on the first evaluation.
            due: None,
            condition: true,
            value: row.get("value"),
            row: image.and_then(|t| serde_json::from_str(&t).ok()),
            acknowledged: acknowledged_at.map(|at| Ack {
                by: row.get("acknowledged_by"),
                at: micros(at),
                note: row.get("ack_note"),
            }),
            cause: None,
            summary: row.get::<Option<String>, _>("summary").unwrap_or_default(),
        });
    }
    out
}

fn time(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// A stored definition that no longer parses (written by a newer version, edited by hand).
fn bad_definition(id: i64, e: serde_json::Error) -> StoreError {
    StoreError::Query(sqlx::Error::Decode(format!("alert rule {id}: {e}").into()))
}

impl Store {
    pub async fn insert_alert_rule(
        &self,
        def: &AlertRuleDefinition,
        by: Option<&str>,
    ) -> Result<AlertRuleRecord, StoreError> {
        let row = sqlx::query(
            "INSERT INTO alert_rules (name, definition, created_by, updated_by) VALUES ($1, $2::jsonb, $3, $3) \
             RETURNING id, created_at, updated_at",
        )
        .bind(def.name.trim())
        .bind(json_text(def))
        .bind(by)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| unique(e, &def.name))?;
        Ok(AlertRuleRecord {
            id: RuleId(row.get("id")),
            definition: def.clone(),
            created_by: by.map(str::to_string),
            updated_by: by.map(str::to_string),
            created_at: micros(row.get("created_at")),
            updated_at: micros(row.get("updated_at")),
        })
    }

    pub async fn update_alert_rule(
        &self,
        id: RuleId,
        def: &AlertRuleDefinition,
        by: Option<&str>,
    ) -> Result<Option<AlertRuleRecord>, StoreError> {
        let row = sqlx::query(
            "UPDATE alert_rules SET name = $2, definition = $3::jsonb, updated_by = $4, updated_at = now() \
             WHERE id = $1 RETURNING created_by, created_at, updated_at",
        )
        .bind(id.0)
        .bind(def.name.trim())
        .bind(json_text(def))
        .bind(by)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| unique(e, &def.name))?;
        Ok(row.map(|row| AlertRuleRecord {
            id,
            definition: def.clone(),
            created_by: row.get("created_by"),
            updated_by: by.map(str::to_string),
            created_at: micros(row.get("created_at")),
            updated_at: micros(row.get("updated_at")),
        }))
    }

    pub async fn delete_alert_rule(&self, id: RuleId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM alert_rules WHERE id = $1").bind(id.0).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn load_alert_rules(&self) -> Result<Vec<AlertRuleRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, definition::text AS definition, created_by, updated_by, created_at, updated_at \
             FROM alert_rules ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                let id: i64 = row.get("id");
                let text: String = row.get("definition");
                Ok(AlertRuleRecord {
                    id: RuleId(id),
                    definition: serde_json::from_str(&text).map_err(|e| bad_definition(id, e))?,
                    created_by: row.get("created_by"),
                    updated_by: row.get("updated_by"),
                    created_at: micros(row.get("created_at")),
                    updated_at: micros(row.get("updated_at")),
                })
            })
            .collect()
    }

    /// The instances that were pending or firing as of the replica's positions (a checkpoint).
    ///
    /// Whatever was decided beyond those positions is decided again: the source delivers its
    /// transactions again, and time-driven transitions decided on a replica beyond them are
    /// judged again on the replayed rows. So each instance's transitions from the first one
    /// beyond (caused by a later transaction, or decided on a later replica) are deleted, and
    /// its state is the one they had reached before. Replay records them again, the same way
    /// for a transaction, so the history stays one chain per instance. An acknowledgement
    /// recorded for an instance that is still open is kept; instance rows no longer open go.
    pub async fn load_alert_state(&self, positions: &[(String, Position)]) -> Result<Vec<Instance>, StoreError> {
        let sources: Vec<String> = positions.iter().map(|(s, _)| s.clone()).collect();
        let limits: Vec<i64> = positions.iter().map(|(_, p)| i64::try_from(p.0).unwrap_or(i64::MAX)).collect();
        let mut tx = self.pool.begin().await?;
        let dropped = sqlx::query(
            "WITH c AS (SELECT * FROM unnest($1::text[], $2::bigint[]) AS c(source, pos)), \
             beyond AS ( \
               SELECT t.rule_id, t.instance, min(t.id) AS first_beyond FROM alert_transitions t \
               WHERE EXISTS (SELECT 1 FROM c WHERE t.source = c.source AND t.position_num > c.pos) \
                  OR EXISTS (SELECT 1 FROM jsonb_each_text(coalesce(t.basis, '{}')) b JOIN c ON b.key = c.source \
                             WHERE b.value::bigint > c.pos) \
               GROUP BY t.rule_id, t.instance) \
             DELETE FROM alert_transitions t USING beyond b \
             WHERE t.rule_id = b.rule_id AND t.instance = b.instance AND t.id >= b.first_beyond",
        )
        .bind(&sources)
        .bind(&limits)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if dropped > 0 {
            tracing::info!(transitions = dropped, "alert transitions beyond the checkpoint are decided again");
        }
        let rows = sqlx::query(OPEN_STATE).fetch_all(&mut *tx).await?;
        let open: (Vec<i64>, Vec<String>) =
            rows.iter().map(|r| (r.get::<i64, _>("rule_id"), r.get::<String, _>("instance"))).unzip();
        sqlx::query(
            "DELETE FROM alert_instances i WHERE NOT EXISTS \
             (SELECT 1 FROM unnest($1::bigint[], $2::text[]) AS o(rule_id, instance) \
              WHERE o.rule_id = i.rule_id AND o.instance = i.instance)",
        )
        .bind(&open.0)
        .bind(&open.1)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(open_instances(rows))
    }

    /// The open instances as recorded, changing nothing: what an instance that does not
    /// decide alert state (a cluster's follower) shows until the leader tells it more.
    pub async fn read_alert_state(&self) -> Result<Vec<Instance>, StoreError> {
        Ok(open_instances(sqlx::query(OPEN_STATE).fetch_all(&self.pool).await?))
    }

    /// Records transitions, the instances they leave and the notifications they cause, in one
    /// database transaction.
    /// `instances` are the current state of every instance the transitions touched (`None`:
    /// it is Normal again and its row goes).
    pub async fn record_alerts(
        &self,
        transitions: &[Transition],
        instances: &[(RuleId, String, Option<Instance>)],
        outgoing: &[crate::store::notifications::Outgoing],
        fence: Option<&Fence>,
    ) -> Result<(), StoreError> {
        // One statement per kind of write, the rows passed as arrays: a backlog's thousands of
        // transitions cost three round trips, not one each.
        let mut tx = self.pool.begin().await?;
        let epoch = Store::check_fence(&mut tx, fence).await?;
        if !transitions.is_empty() {
            let mut c = TransitionColumns::default();
            for t in transitions {
                c.push(t);
            }
            sqlx::query(
                "INSERT INTO alert_transitions (rule_id, instance, labels, from_state, to_state, at, cause, source, \
                 position, commit_ts, value, row_before, row_after, summary, position_num, basis, epoch) \
                 SELECT rule_id, instance, labels::jsonb, from_state, to_state, at, cause, source, position, commit_ts, \
                   value, row_before::jsonb, row_after::jsonb, summary, position_num, basis::jsonb, $17::bigint \
                 FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[], \
                   $8::text[], $9::text[], $10::timestamptz[], $11::text[], $12::text[], $13::text[], $14::text[], \
                   $15::bigint[], $16::text[]) WITH ORDINALITY \
                   AS t(rule_id, instance, labels, from_state, to_state, at, cause, source, position, commit_ts, value, \
                     row_before, row_after, summary, position_num, basis, n) \
                 ORDER BY n \
                 ON CONFLICT (rule_id, instance, to_state, cause) DO NOTHING",
            )
            .bind(c.rule)
            .bind(c.instance)
            .bind(c.labels)
            .bind(c.from)
            .bind(c.to)
            .bind(c.at)
            .bind(c.cause)
            .bind(c.source)
            .bind(c.position)
            .bind(c.commit_ts)
            .bind(c.value)
            .bind(c.before)
            .bind(c.after)
            .bind(c.summary)
            .bind(c.position_num)
            .bind(c.basis)
            .bind(epoch)
            .execute(&mut *tx)
            .await?;
        }
        let (gone, kept): (Vec<_>, Vec<_>) = instances.iter().partition(|(_, _, i)| i.is_none());
        if !gone.is_empty() {
            let rules: Vec<i64> = gone.iter().map(|(r, _, _)| r.0).collect();
            let keys: Vec<&str> = gone.iter().map(|(_, k, _)| k.as_str()).collect();
            sqlx::query(
                "DELETE FROM alert_instances i USING unnest($1::bigint[], $2::text[]) AS g(rule_id, instance) \
                 WHERE i.rule_id = g.rule_id AND i.instance = g.instance",
            )
            .bind(rules)
            .bind(keys)
            .execute(&mut *tx)
            .await?;
        }
        if !kept.is_empty() {
            let mut c = InstanceColumns::default();
            for (rule, key, instance) in kept {
                c.push(*rule, key, instance.as_ref().expect("partitioned"));
            }
            sqlx::query(
                "INSERT INTO alert_instances (rule_id, instance, labels, state, since, active_since, due, condition, \
                 value, row_image, acknowledged_by, acknowledged_at, ack_note, summary) \
                 SELECT rule_id, instance, labels::jsonb, state, since, active_since, due, condition, value, \
                   row_image::jsonb, acknowledged_by, acknowledged_at, ack_note, summary \
                 FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], \
                   $7::timestamptz[], $8::bool[], $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::text[], \
                   $14::text[]) AS i(rule_id, instance, labels, state, since, active_since, due, condition, value, \
                     row_image, acknowledged_by, acknowledged_at, ack_note, summary) \
                 ON CONFLICT (rule_id, instance) DO UPDATE SET labels = EXCLUDED.labels, state = EXCLUDED.state, \
                 since = EXCLUDED.since, active_since = EXCLUDED.active_since, due = EXCLUDED.due, \
                 condition = EXCLUDED.condition, value = EXCLUDED.value, row_image = EXCLUDED.row_image, \
                 acknowledged_by = EXCLUDED.acknowledged_by, acknowledged_at = EXCLUDED.acknowledged_at, \
                 ack_note = EXCLUDED.ack_note, summary = EXCLUDED.summary, updated_at = now()",
            )
            .bind(c.rule)
            .bind(c.instance)
            .bind(c.labels)
            .bind(c.state)
            .bind(c.since)
            .bind(c.active_since)
            .bind(c.due)
            .bind(c.condition)
            .bind(c.value)
            .bind(c.row)
            .bind(c.ack_by)
            .bind(c.ack_at)
            .bind(c.ack_note)
            .bind(c.summary)
            .execute(&mut *tx)
            .await?;
        }
        Store::enqueue_in(&mut tx, outgoing, epoch).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records an acknowledgement made on an instance that does not decide alert state (a
    /// cluster's follower): only who, when and why, on the instance's row if it is still
    /// open. The leader, told of it, records the instance whole.
    pub async fn record_acknowledgement(&self, rule: RuleId, instance: &str, ack: &Ack) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE alert_instances SET acknowledged_by = $3, acknowledged_at = $4, ack_note = $5, updated_at = now() \
             WHERE rule_id = $1 AND instance = $2",
        )
        .bind(rule.0)
        .bind(instance)
        .bind(&ack.by)
        .bind(time(ack.at))
        .bind(&ack.note)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Transitions, newest first.
    pub async fn alert_history(&self, filter: &HistoryFilter) -> Result<Vec<TransitionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, rule_id, instance, labels::text AS labels, from_state, to_state, at, cause, source, position, \
             commit_ts, value, row_before::text AS row_before, row_after::text AS row_after, summary, recorded_at \
             FROM alert_transitions WHERE ($1::bigint IS NULL OR rule_id = $1) AND ($2::timestamptz IS NULL OR at >= $2) \
             AND ($3::timestamptz IS NULL OR at < $3) ORDER BY at DESC, id DESC LIMIT $4",
        )
        .bind(filter.rule.map(|r| r.0))
        .bind(filter.from.map(time))
        .bind(filter.to.map(time))
        .bind(filter.limit.clamp(1, 10_000))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let cause_key: String = row.get("cause");
            let at = micros(row.get("at"));
            let source: Option<String> = row.get("source");
            let position: Option<String> = row.get("position");
            let commit_ts: Option<DateTime<Utc>> = row.get("commit_ts");
            let cause = match (source, position.as_deref().and_then(crate::change::Position::parse), commit_ts) {
                (Some(source), Some(position), Some(commit_ts)) => {
                    Cause::Transaction { source: source.into(), position, commit_ts: micros(commit_ts) }
                }
                _ => Cause::Due { at },
            };
            debug_assert!(cause_key.starts_with("tx:") || cause_key.starts_with("due:"));
            let state = |name: &str| AlertState::parse(&row.get::<String, _>(name)).unwrap_or(AlertState::Normal);
            let json = |name: &str| row.get::<Option<String>, _>(name).and_then(|t| serde_json::from_str(&t).ok());
            let labels: String = row.get("labels");
            out.push(TransitionRecord {
                id: row.get("id"),
                transition: Transition {
                    rule: RuleId(row.get("rule_id")),
                    instance: row.get("instance"),
                    labels: serde_json::from_str(&labels).unwrap_or_default(),
                    from: state("from_state"),
                    to: state("to_state"),
                    cause,
                    value: row.get("value"),
                    before: json("row_before"),
                    after: json("row_after"),
                    summary: row.get("summary"),
                    basis: Vec::new(),
                },
                recorded_at: micros(row.get("recorded_at")),
            });
        }
        Ok(out)
    }
}

impl Store {
    pub async fn insert_silence(
        &self,
        matchers: &[Matcher],
        starts_at: i64,
        ends_at: i64,
        comment: Option<&str>,
        by: Option<&str>,
    ) -> Result<Silence, StoreError> {
        let row = sqlx::query(
            "INSERT INTO silences (matchers, starts_at, ends_at, comment, created_by) VALUES ($1::jsonb, $2, $3, $4, $5) \
             RETURNING id",
        )
        .bind(json_text(&matchers))
        .bind(time(starts_at))
        .bind(time(ends_at))
        .bind(comment)
        .bind(by)
        .fetch_one(&self.pool)
        .await?;
        Ok(Silence {
            id: row.get("id"),
            matchers: matchers.to_vec(),
            starts_at,
            ends_at,
            comment: comment.map(str::to_string),
            created_by: by.map(str::to_string),
        })
    }

    /// Ends a silence now; false when there is none that has not ended.
    pub async fn expire_silence(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE silences SET ends_at = least(ends_at, now()), expired_at = now() WHERE id = $1 AND ends_at > now()",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Silences that have not ended.
    pub async fn load_silences(&self) -> Result<Vec<Silence>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, matchers::text AS matchers, starts_at, ends_at, comment, created_by FROM silences \
             WHERE ends_at > now() ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let matchers: String = row.get("matchers");
                Silence {
                    id: row.get("id"),
                    matchers: serde_json::from_str(&matchers).unwrap_or_default(),
                    starts_at: micros(row.get("starts_at")),
                    ends_at: micros(row.get("ends_at")),
                    comment: row.get("comment"),
                    created_by: row.get("created_by"),
                }
            })
            .collect())
    }
}

/// A unique-name violation as the user's error, anything else as it is.
fn unique(e: sqlx::Error, name: &str) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        return StoreError::Duplicate(format!("an alert rule named `{}` exists", name.trim()));
    }
    StoreError::Query(e)
}

/// Transitions as one array per column, for one `unnest` insert.
#[derive(Default)]
struct TransitionColumns {
    rule: Vec<i64>,
    instance: Vec<String>,
    labels: Vec<String>,
    from: Vec<&'static str>,
    to: Vec<&'static str>,
    at: Vec<DateTime<Utc>>,
    cause: Vec<String>,
    source: Vec<Option<String>>,
    position: Vec<Option<String>>,
    commit_ts: Vec<Option<DateTime<Utc>>>,
    value: Vec<Option<String>>,
    before: Vec<Option<String>>,
    after: Vec<Option<String>>,
    summary: Vec<String>,
    position_num: Vec<Option<i64>>,
    basis: Vec<Option<String>>,
}

impl TransitionColumns {
    fn push(&mut self, t: &Transition) {
        let (source, position, position_num, commit_ts) = match &t.cause {
            Cause::Transaction { source, position, commit_ts } => (
                Some(source.to_string()),
                Some(position.to_string()),
                i64::try_from(position.0).ok(),
                Some(time(*commit_ts)),
            ),
            Cause::Due { .. } => (None, None, None, None),
        };
        let basis = (!t.basis.is_empty()).then(|| {
            let map: serde_json::Map<String, serde_json::Value> =
                t.basis.iter().map(|(s, p)| (s.to_string(), serde_json::Value::from(p.0))).collect();
            serde_json::Value::Object(map).to_string()
        });
        self.rule.push(t.rule.0);
        self.instance.push(t.instance.clone());
        self.labels.push(json_text(&t.labels));
        self.from.push(t.from.name());
        self.to.push(t.to.name());
        self.at.push(time(t.cause.at()));
        self.cause.push(t.cause.key());
        self.source.push(source);
        self.position.push(position);
        self.commit_ts.push(commit_ts);
        self.value.push(t.value.clone());
        self.before.push(t.before.as_ref().map(json_text));
        self.after.push(t.after.as_ref().map(json_text));
        self.summary.push(t.summary.clone());
        self.position_num.push(position_num);
        self.basis.push(basis);
    }
}

/// Instances' last states as one array per column, for one `unnest` upsert.
#[derive(Default)]
struct InstanceColumns {
    rule: Vec<i64>,
    instance: Vec<String>,
    labels: Vec<String>,
    state: Vec<&'static str>,
    since: Vec<DateTime<Utc>>,
    active_since: Vec<DateTime<Utc>>,
    due: Vec<Option<DateTime<Utc>>>,
    condition: Vec<bool>,
    value: Vec<Option<String>>,
    row: Vec<Option<String>>,
    ack_by: Vec<Option<String>>,
    ack_at: Vec<Option<DateTime<Utc>>>,
    ack_note: Vec<Option<String>>,
    summary: Vec<String>,
}

impl InstanceColumns {
    fn push(&mut self, rule: RuleId, key: &str, i: &Instance) {
        let ack = i.acknowledged.as_ref();
        self.rule.push(rule.0);
        self.instance.push(key.to_string());
        self.labels.push(json_text(&i.labels));
        self.state.push(i.state.name());
        self.since.push(time(i.since));
        self.active_since.push(time(i.active_since));
        self.due.push(i.due.map(time));
        self.condition.push(i.condition);
        self.value.push(i.value.clone());
        self.row.push(i.row.as_ref().map(json_text));
        self.ack_by.push(ack.and_then(|a| a.by.clone()));
        self.ack_at.push(ack.map(|a| time(a.at)));
        self.ack_note.push(ack.and_then(|a| a.note.clone()));
        self.summary.push(i.summary.clone());
    }
}
