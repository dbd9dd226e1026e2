//! Revoked tokens in the app database: one token by `jti`, or every token of a subject issued
//! up to a time. Read whole at start ([`Store::revocations`]); the list is small (a row per act
//! of revocation, not per token) and every instance needs all of it.

use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{Store, StoreError};

/// What is revoked.
#[derive(Clone, Debug, PartialEq)]
pub enum Revoked {
    /// The token whose `jti` claim is this.
    Token(String),
    /// Every token of this `sub` whose `iat` is at or before `issued_before` (µs since the Unix
    /// epoch).
    Subject { subject: String, issued_before: i64 },
}

/// One act of revocation, as recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct Revocation {
    pub id: i64,
    pub revoked: Revoked,
    pub reason: Option<String>,
    pub revoked_by: String,
    /// µs since the Unix epoch.
    pub revoked_at: i64,
}

const COLUMNS: &str = "id, jti, subject, (extract(epoch from issued_before) * 1000000)::bigint AS before_us, \
     reason, revoked_by, (extract(epoch from revoked_at) * 1000000)::bigint AS at_us";

fn revocation(row: &PgRow) -> Result<Revocation, StoreError> {
    let jti: Option<String> = row.try_get("jti")?;
    let subject: Option<String> = row.try_get("subject")?;
    let before: Option<i64> = row.try_get("before_us")?;
    let revoked = match (jti, subject, before) {
        (Some(jti), _, _) => Revoked::Token(jti),
        (None, Some(subject), Some(issued_before)) => Revoked::Subject { subject, issued_before },
        // The table's checks rule this out.
        _ => return Err(StoreError::Query(sqlx::Error::Protocol("a revocation names neither jti nor subject".into()))),
    };
    Ok(Revocation {
        id: row.try_get("id")?,
        revoked,
        reason: row.try_get("reason")?,
        revoked_by: row.try_get("revoked_by")?,
        revoked_at: row.try_get("at_us")?,
    })
}

impl Store {
    /// Records a revocation. Revoking a `jti` again returns the first record unchanged; a
    /// subject's `issued_before` is the database's `now()`, so every instance agrees on it.
    pub async fn revoke(
        &self,
        what: RevokeRequest<'_>,
        reason: Option<&str>,
        revoked_by: &str,
    ) -> Result<Revocation, StoreError> {
        let row = match what {
            RevokeRequest::Token(jti) => {
                let sql = format!(
                    "WITH new AS (INSERT INTO token_revocations (jti, reason, revoked_by) VALUES ($1, $2, $3) \
                     ON CONFLICT (jti) WHERE jti IS NOT NULL DO NOTHING RETURNING *) \
                     SELECT {COLUMNS} FROM new UNION ALL SELECT {COLUMNS} FROM token_revocations WHERE jti = $1 \
                     LIMIT 1"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(jti)
                    .bind(reason)
                    .bind(revoked_by)
                    .fetch_one(&self.pool)
                    .await?
            }
            RevokeRequest::Subject(subject) => {
                let sql = format!(
                    "INSERT INTO token_revocations (subject, issued_before, reason, revoked_by) \
                     VALUES ($1, now(), $2, $3) RETURNING {COLUMNS}"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(subject)
                    .bind(reason)
                    .bind(revoked_by)
                    .fetch_one(&self.pool)
                    .await?
            }
        };
        revocation(&row)
    }

    /// Every revocation, newest first.
    pub async fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM token_revocations ORDER BY id DESC");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        rows.iter().map(revocation).collect()
    }
}

/// What a caller asks to revoke.
#[derive(Clone, Copy, Debug)]
pub enum RevokeRequest<'a> {
    Token(&'a str),
    Subject(&'a str),
}
