//! Contact points, the routing policy and the notification outbox in the app database.
//!
//! The outbox is written inside the alert writer's transaction ([`Store::record_alerts`]), so
//! a transition and its notifications are recorded together or not at all; rows are unique on
//! (contact point, rule, instance, kind, cause), so a transition delivered again after a
//! restart adds none. A row is marked `sending` (committed) before it goes to its channel:
//! finding one so at a start means the process died mid-send, and it is sent again, counted.

use chrono::{DateTime, Utc};
use serde_json::Value as Json;
use sqlx::{AssertSqlSafe, Postgres, Row, Transaction};

use super::{Store, StoreError};
use crate::notify::contact::{ChannelKind, ContactPointId};
use crate::notify::message::Content;

/// A contact point as stored (its secrets still sealed).
#[derive(Clone, Debug, PartialEq)]
pub struct ContactPointRow {
    pub id: ContactPointId,
    pub name: String,
    pub kind: ChannelKind,
    pub settings: Json,
    pub secret: Option<Vec<u8>>,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A notification to write with the transition that caused it.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    pub contact_point: ContactPointId,
    pub rule: Option<i64>,
    pub instance: String,
    pub cause: String,
    pub content: Content,
    /// A silence covered it: recorded as `silenced`, never sent.
    pub silenced: bool,
    /// The mute timing that held for its route: recorded as `muted`, never sent.
    pub muted: Option<String>,
    /// The group it goes out in (the route's `groupBy` values); `None`: alone.
    pub group: Option<String>,
    /// Not sent before this (µs; the route's `groupWait` after now), so its group can gather.
    pub not_before: i64,
}

impl Outgoing {
    /// Stable across restarts: the same transition routed to the same contact point gets the
    /// same key, which is what lets a receiver de-duplicate a send repeated after a crash.
    pub fn idempotency_key(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in [
            self.contact_point.0.to_string().as_str(),
            &self.rule.map(|r| r.to_string()).unwrap_or_default(),
            &self.instance,
            self.content.kind.name(),
            &self.cause,
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        hex::encode(&h.finalize()[..16])
    }
}

/// One row of the outbox.
#[derive(Clone, Debug, PartialEq)]
pub struct NotificationRecord {
    pub id: i64,
    pub contact_point: ContactPointId,
    pub rule: Option<i64>,
    pub instance: String,
    pub kind: String,
    pub cause: String,
    pub content: Content,
    pub status: String,
    pub attempts: i32,
    pub repeats: i32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    pub idempotency_key: String,
    pub group: Option<String>,
    /// Why it was not sent, for `silenced` and `muted` ones.
    pub note: Option<String>,
    /// Recipients an earlier attempt sent to already (Twilio: one message per recipient).
    pub delivered_to: i32,
}

/// What `notifications` may be narrowed to.
#[derive(Clone, Debug, Default)]
pub struct NotificationFilter {
    pub rule: Option<i64>,
    pub instance: Option<String>,
    pub status: Option<String>,
    pub contact_point: Option<ContactPointId>,
    pub limit: i64,
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn contact_point_row(row: &sqlx::postgres::PgRow) -> Result<ContactPointRow, StoreError> {
    let kind: String = row.get("kind");
    let settings: String = row.get("settings");
    Ok(ContactPointRow {
        id: ContactPointId(row.get("id")),
        name: row.get("name"),
        kind: ChannelKind::parse(&kind)
            .ok_or_else(|| StoreError::Query(sqlx::Error::Decode(format!("contact point kind `{kind}`").into())))?,
        settings: serde_json::from_str(&settings).unwrap_or(Json::Null),
        secret: row.get("secret"),
        created_by: row.get("created_by"),
        updated_by: row.get("updated_by"),
        created_at: micros(row.get("created_at")),
        updated_at: micros(row.get("updated_at")),
    })
}

fn notification_row(row: &sqlx::postgres::PgRow) -> Result<NotificationRecord, StoreError> {
    let content: String = row.get("content");
    Ok(NotificationRecord {
        id: row.get("id"),
        contact_point: ContactPointId(row.get("contact_point_id")),
        rule: row.get("rule_id"),
        instance: row.get("instance"),
        kind: row.get("kind"),
        cause: row.get("cause"),
        content: serde_json::from_str(&content)
            .map_err(|e| StoreError::Query(sqlx::Error::Decode(format!("notification content: {e}").into())))?,
        status: row.get("status"),
        attempts: row.get("attempts"),
        repeats: row.get("repeats"),
        next_attempt_at: micros(row.get("next_attempt_at")),
        last_error: row.get("last_error"),
        created_at: micros(row.get("created_at")),
        sent_at: row.get::<Option<DateTime<Utc>>, _>("sent_at").map(micros),
        idempotency_key: row.get("idempotency_key"),
        group: row.get("group_key"),
        note: row.get("note"),
        delivered_to: row.get("delivered_to"),
    })
}

const CONTACT_COLUMNS: &str =
    "id, name, kind, settings::text AS settings, secret, created_by, updated_by, created_at, updated_at";
const NOTIFICATION_COLUMNS: &str = "id, contact_point_id, rule_id, instance, kind, cause, content::text AS content, \
     status, attempts, repeats, next_attempt_at, last_error, created_at, sent_at, idempotency_key, group_key, note, delivered_to";

fn taken(e: sqlx::Error, name: &str) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        return StoreError::Duplicate(format!("a contact point named `{}` exists", name.trim()));
    }
    StoreError::Query(e)
}

impl Store {
    pub async fn insert_contact_point(
        &self,
        name: &str,
        kind: ChannelKind,
        settings: &Json,
        secret: Option<&[u8]>,
        by: Option<&str>,
    ) -> Result<ContactPointRow, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO contact_points (name, kind, settings, secret, created_by, updated_by) \
             VALUES ($1, $2, $3::jsonb, $4, $5, $5) RETURNING {CONTACT_COLUMNS}"
        )))
        .bind(name.trim())
        .bind(kind.name())
        .bind(settings.to_string())
        .bind(secret)
        .bind(by)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| taken(e, name))?;
        contact_point_row(&row)
    }

    pub async fn update_contact_point(
        &self,
        id: ContactPointId,
        name: &str,
        settings: &Json,
        secret: Option<&[u8]>,
        by: Option<&str>,
    ) -> Result<Option<ContactPointRow>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE contact_points SET name = $2, settings = $3::jsonb, secret = $4, updated_by = $5, \
             updated_at = now() WHERE id = $1 RETURNING {CONTACT_COLUMNS}"
        )))
        .bind(id.0)
        .bind(name.trim())
        .bind(settings.to_string())
        .bind(secret)
        .bind(by)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| taken(e, name))?;
        row.as_ref().map(contact_point_row).transpose()
    }

    /// Deletes a contact point and its notifications; routes naming it are left to the policy
    /// check of the next change (routing skips a contact point that is gone).
    pub async fn delete_contact_point(&self, id: ContactPointId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM contact_points WHERE id = $1").bind(id.0).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn contact_points(&self) -> Result<Vec<ContactPointRow>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!("SELECT {CONTACT_COLUMNS} FROM contact_points ORDER BY id")))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(contact_point_row).collect()
    }

    pub async fn contact_point(&self, id: ContactPointId) -> Result<Option<ContactPointRow>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {CONTACT_COLUMNS} FROM contact_points WHERE id = $1")))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(contact_point_row).transpose()
    }

    /// The routing policy's routes as stored (`None` before one is set).
    pub async fn notification_policy(&self) -> Result<Option<Json>, StoreError> {
        let row =
            sqlx::query("SELECT routes::text AS routes FROM notification_policy").fetch_optional(&self.pool).await?;
        Ok(row.and_then(|r| serde_json::from_str(&r.get::<String, _>("routes")).ok()))
    }

    pub async fn set_notification_policy(&self, routes: &Json, by: Option<&str>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO notification_policy (id, routes, updated_by) VALUES (true, $1::jsonb, $2) \
             ON CONFLICT (id) DO UPDATE SET routes = EXCLUDED.routes, updated_by = EXCLUDED.updated_by, \
             updated_at = now()",
        )
        .bind(routes.to_string())
        .bind(by)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Writes notifications inside the caller's transaction. A contact point deleted meanwhile
    /// is skipped; a row already there (the same transition again) is kept as it is.
    pub(super) async fn enqueue_in(
        tx: &mut Transaction<'_, Postgres>,
        outgoing: &[Outgoing],
        epoch: Option<i64>,
    ) -> Result<(), StoreError> {
        if outgoing.is_empty() {
            return Ok(());
        }
        let mut cp = Vec::new();
        let mut rule = Vec::new();
        let mut instance = Vec::new();
        let mut kind = Vec::new();
        let mut cause = Vec::new();
        let mut content = Vec::new();
        let mut status = Vec::new();
        let mut key = Vec::new();
        let mut group = Vec::new();
        let mut not_before = Vec::new();
        let mut note = Vec::new();
        for o in outgoing {
            group.push(o.group.clone());
            not_before.push(DateTime::from_timestamp_micros(o.not_before).unwrap_or_default());
            cp.push(o.contact_point.0);
            rule.push(o.rule);
            instance.push(o.instance.clone());
            kind.push(o.content.kind.name());
            cause.push(o.cause.clone());
            content.push(serde_json::to_string(&o.content).expect("content serialises"));
            let (state, why) = match (&o.muted, o.silenced) {
                (_, true) => ("silenced", Some("a silence covers it".to_string())),
                (Some(timing), false) => ("muted", Some(format!("mute timing `{timing}` held"))),
                (None, false) => ("pending", None),
            };
            status.push(state);
            note.push(why);
            key.push(o.idempotency_key());
        }
        sqlx::query(
            "INSERT INTO notifications (contact_point_id, rule_id, instance, kind, cause, content, status, \
               idempotency_key, group_key, next_attempt_at, note, epoch) \
             SELECT u.cp, u.rule, u.instance, u.kind, u.cause, u.content::jsonb, u.status, u.key, u.grp, \
               greatest(u.not_before, now()), u.note, $12::bigint \
             FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
               $8::text[], $9::text[], $10::timestamptz[], $11::text[]) WITH ORDINALITY \
               AS u(cp, rule, instance, kind, cause, content, status, key, grp, not_before, note, n) \
             JOIN contact_points c ON c.id = u.cp \
             ORDER BY u.n \
             ON CONFLICT DO NOTHING",
        )
        .bind(cp)
        .bind(rule)
        .bind(instance)
        .bind(kind)
        .bind(cause)
        .bind(content)
        .bind(status)
        .bind(key)
        .bind(group)
        .bind(not_before)
        .bind(note)
        .bind(epoch)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Writes notifications in a transaction of their own (reminders).
    pub async fn enqueue_all(&self, outgoing: &[Outgoing]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        Store::enqueue_in(&mut tx, outgoing, None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sends that were in flight when the process stopped go back to `pending`, counted as
    /// repeats; returns how many per contact point kind.
    pub async fn requeue_in_flight(&self) -> Result<Vec<(ChannelKind, i64)>, StoreError> {
        let rows = sqlx::query(
            "WITH r AS (UPDATE notifications SET status = 'pending', repeats = repeats + 1, next_attempt_at = now() \
               WHERE status = 'sending' RETURNING contact_point_id) \
             SELECT c.kind, count(*) AS n FROM r JOIN contact_points c ON c.id = r.contact_point_id GROUP BY c.kind",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((ChannelKind::parse(&r.get::<String, _>("kind"))?, r.get::<i64, _>("n"))))
            .collect())
    }

    /// The oldest notification of a contact point still to send (pending or in flight).
    pub async fn next_notification(&self, cp: ContactPointId) -> Result<Option<NotificationRecord>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE contact_point_id = $1 \
             AND status IN ('pending', 'sending') ORDER BY id LIMIT 1"
        )))
        .bind(cp.0)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(notification_row).transpose()
    }

    /// The notifications still to send of a contact point's group, oldest first (at most
    /// `limit`): they go out together.
    pub async fn group_members(
        &self,
        cp: ContactPointId,
        group: &str,
        limit: i64,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE contact_point_id = $1 AND group_key = $2 \
             AND status IN ('pending', 'sending') ORDER BY id LIMIT $3"
        )))
        .bind(cp.0)
        .bind(group)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(notification_row).collect()
    }

    /// Committed before the send starts: a crash after this is a send in flight.
    /// Claims notifications for a send (refused, `Fenced`, when `fence` is a leader a newer
    /// one replaced).
    pub async fn mark_sending(&self, ids: &[i64], fence: Option<&super::fence::Fence>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        Store::check_fence(&mut tx, fence).await?;
        sqlx::query("UPDATE notifications SET status = 'sending', attempts = attempts + 1 WHERE id = ANY($1)")
            .bind(ids)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn mark_sent(&self, ids: &[i64]) -> Result<(), StoreError> {
        sqlx::query("UPDATE notifications SET status = 'sent', sent_at = now(), last_error = NULL WHERE id = ANY($1)")
            .bind(ids)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn mark_retry(&self, ids: &[i64], error: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE notifications SET status = 'pending', last_error = $2, next_attempt_at = $3 WHERE id = ANY($1)",
        )
        .bind(ids)
        .bind(error)
        .bind(DateTime::from_timestamp_micros(at).unwrap_or_default())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The first `n` recipients have their message: a retry starts after them.
    pub async fn mark_delivered_to(&self, ids: &[i64], n: i32) -> Result<(), StoreError> {
        sqlx::query("UPDATE notifications SET delivered_to = $2 WHERE id = ANY($1)")
            .bind(ids)
            .bind(n)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn mark_dead(&self, ids: &[i64], error: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE notifications SET status = 'dead', last_error = $2 WHERE id = ANY($1)")
            .bind(ids)
            .bind(error)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn notifications(&self, filter: &NotificationFilter) -> Result<Vec<NotificationRecord>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications \
             WHERE ($1::bigint IS NULL OR rule_id = $1) AND ($2::text IS NULL OR instance = $2) \
               AND ($3::text IS NULL OR status = $3) AND ($4::bigint IS NULL OR contact_point_id = $4) \
             ORDER BY id DESC LIMIT $5"
        )))
        .bind(filter.rule)
        .bind(filter.instance.as_deref())
        .bind(filter.status.as_deref())
        .bind(filter.contact_point.map(|c| c.0))
        .bind(filter.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(notification_row).collect()
    }

    pub async fn notification(&self, id: i64) -> Result<Option<NotificationRecord>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(notification_row).transpose()
    }

    /// Notifications still to send, and the age of the oldest (µs).
    pub async fn outbox_depth(&self) -> Result<(i64, i64), StoreError> {
        let row = sqlx::query(
            "SELECT count(*) AS n, COALESCE((extract(epoch FROM now() - min(created_at)) * 1e6)::bigint, 0) AS age \
             FROM notifications WHERE status IN ('pending', 'sending')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.get("n"), row.get("age")))
    }
}
