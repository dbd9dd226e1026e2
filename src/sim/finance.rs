//! Payment reconciliation: a settlement batch per payment account and day, matched in steps
//! against the ledger, finishing matched or with exceptions that finance then resolves.
//!
//! Batches open at 02:00 simulated time for the previous day, like the seed data's, so with the
//! real clock the morning shows the matching job at work and the rest of the day shows
//! exceptions being cleared. Matching speed is per batch and simulated hour (see `plan`), not per
//! order: a nightly job does not speed up because the shop is busy.
//!
//! Each step is a few statements in one transaction with the batch row locked first, because
//! finishing a batch depends on how many of its exceptions are still open.

use chrono::{DateTime, Duration as Days, NaiveDate, Timelike, Utc};
use rand::Rng;
use rand::rngs::StdRng;
use tokio_postgres::{Client, Statement};

use super::orders::pick_weighted;
use super::plan::EventKind;
use super::world::{Shared, push_capped};

/// The seed's accounts, used when the database has no batches to learn them from.
const DEFAULT_ACCOUNTS: [&str; 5] = ["stripe-eu", "stripe-us", "adyen-apac", "paypal", "bank-sepa"];

/// Opening more than this many missed days at once is pointless (a compressed day after a pause).
const MAX_CATCH_UP_DAYS: i64 = 3;

/// Chance that a matching step turns up a discrepancy, and that the final step does.
const EXCEPTION_PER_STEP: f64 = 0.06;
const EXCEPTION_AT_END: f64 = 0.10;

pub(crate) struct Finance {
    accounts: Vec<String>,
    /// Batches open or being matched.
    pub batches: Vec<i64>,
    /// Unresolved exceptions, oldest first.
    pub exceptions: std::collections::VecDeque<i64>,
    /// The last batch date the scheduler opened batches for.
    opened_through: Option<NaiveDate>,
}

pub(crate) struct NewException {
    kind: &'static str,
    amount: f64,
    detail: String,
}

pub(crate) enum FinanceJob {
    Open {
        account: String,
        date: NaiveDate,
        expected_count: i32,
        expected_amount: f64,
    },
    /// Match `step` of the batch's expected transactions; `during` is raised on the way,
    /// `at_end` only if this step finishes the batch.
    Match {
        batch: i64,
        step: f64,
        during: Option<NewException>,
        at_end: Option<NewException>,
    },
    Resolve(i64),
}

impl Finance {
    pub async fn load(client: &Client) -> Result<Finance, tokio_postgres::Error> {
        let mut accounts: Vec<String> = client
            .query("SELECT DISTINCT account FROM reconciliation_batches ORDER BY account LIMIT 50", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if accounts.is_empty() {
            accounts = DEFAULT_ACCOUNTS.iter().map(|a| a.to_string()).collect();
        }
        let batches = client
            .query(
                "SELECT id FROM reconciliation_batches WHERE status IN ('open', 'matching') ORDER BY batch_date, id LIMIT 10000",
                &[],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let exceptions = client
            .query(
                "SELECT id FROM reconciliation_exceptions WHERE resolved_at IS NULL ORDER BY created_at, id LIMIT 100000",
                &[],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok(Finance { accounts, batches, exceptions, opened_through: None })
    }

    /// Batches due by `sim_time` and not opened yet: every account's batch for yesterday once
    /// it is past 02:00. The first call opens the current day's (existing ones are kept).
    pub fn due_openings(&mut self, sim_time: DateTime<Utc>, rng: &mut StdRng) -> Vec<FinanceJob> {
        let days_back = if sim_time.hour() >= 2 { 1 } else { 2 };
        let due = sim_time.date_naive() - Days::days(days_back);
        let first = match self.opened_through {
            Some(done) if done >= due => return Vec::new(),
            Some(done) => (done + Days::days(1)).max(due - Days::days(MAX_CATCH_UP_DAYS - 1)),
            None => due,
        };
        self.opened_through = Some(due);
        let mut jobs = Vec::new();
        for date in first.iter_days().take_while(|d| *d <= due) {
            for account in &self.accounts {
                // Sizes and values like the seed's: a few hundred to a few thousand
                // settlements of 35 to 125 each.
                let expected_count = 400 + (rng.random::<f64>().powf(1.5) * 2600.0) as i32;
                let expected_amount = expected_count as f64 * (35.0 + 90.0 * rng.random::<f64>());
                jobs.push(FinanceJob::Open { account: account.clone(), date, expected_count, expected_amount });
            }
        }
        jobs
    }

    pub fn take(&mut self, kind: EventKind, rng: &mut StdRng) -> Option<FinanceJob> {
        match kind {
            EventKind::BatchMatching => {
                if self.batches.is_empty() {
                    return None;
                }
                // Any open batch may be next; the batch stays listed until a step finishes it.
                let batch = self.batches[rng.random_range(0..self.batches.len())];
                let step = rng.random_range(0.10..0.25);
                let during = rng.random_bool(EXCEPTION_PER_STEP).then(|| new_exception(rng));
                let at_end = rng.random_bool(EXCEPTION_AT_END).then(|| new_exception(rng));
                Some(FinanceJob::Match { batch, step, during, at_end })
            }
            EventKind::ExceptionResolved => Some(FinanceJob::Resolve(self.exceptions.pop_front()?)),
            _ => None,
        }
    }
}

/// A discrepancy of one of the seed's kinds, with an amount typical for it.
fn new_exception(rng: &mut StdRng) -> NewException {
    let reference: String = (0..10).map(|_| char::from(b"0123456789ABCDEF"[rng.random_range(0..16)])).collect();
    let r: f64 = rng.random();
    let (kind, amount) = match pick_weighted(&[0.35, 0.25, 0.20, 0.10, 0.10], rng) {
        0 => ("amount_mismatch", 0.01 + 49.99 * r * r),
        1 => ("missing_in_ledger", 10.0 + 1990.0 * r * r),
        2 => ("missing_in_bank", 10.0 + 1990.0 * r * r),
        3 => ("duplicate", 10.0 + 490.0 * r),
        _ => ("fee_discrepancy", 0.10 + 29.90 * r),
    };
    let amount = (amount * 100.0).round() / 100.0;
    let detail = match kind {
        "amount_mismatch" => format!("Settlement TX-{reference} differs from the ledger by {amount:.2}"),
        "missing_in_ledger" => format!("Bank line TX-{reference} has no matching ledger entry"),
        "missing_in_bank" => format!("Ledger entry TX-{reference} not found in the settlement file"),
        "duplicate" => format!("Transaction TX-{reference} appears twice in the settlement file"),
        _ => format!("Processing fee on TX-{reference} does not match the contract rate"),
    };
    NewException { kind, amount, detail }
}

const OPEN: &str = "
INSERT INTO reconciliation_batches (account, batch_date, expected_count, expected_amount, status, opened_at, updated_at)
VALUES ($1::text, $2::text::date, $3::int4, round($4::float8::numeric, 2), 'open', now(), now())
ON CONFLICT (account, batch_date) DO NOTHING
RETURNING id";

const LOCK_BATCH: &str = "
SELECT status, expected_count, matched_count FROM reconciliation_batches WHERE id = $1::int8 FOR UPDATE";

const OPEN_EXCEPTIONS: &str = "
SELECT count(*)::int4 FROM reconciliation_exceptions WHERE batch_id = $1::int8 AND resolved_at IS NULL";

const RAISE: &str = "
INSERT INTO reconciliation_exceptions (batch_id, kind, amount, detail, created_at)
VALUES ($1::int8, $2::text, round($3::float8::numeric, 2), $4::text, now())
RETURNING id";

/// A matched batch has matched everything; otherwise the amount follows the count.
const PROGRESS: &str = "
UPDATE reconciliation_batches
SET matched_count = $2::int4,
    matched_amount = CASE WHEN $3::text = 'matched' THEN expected_amount
                          ELSE least(expected_amount, round(expected_amount * $2::int4 / greatest(expected_count, 1), 2)) END,
    status = $3::text,
    closed_at = CASE WHEN $3::text = 'matched' THEN greatest(now(), updated_at, opened_at) END,
    updated_at = greatest(now(), updated_at, opened_at)
WHERE id = $1::int8";

const EXCEPTION_BATCH: &str = "
SELECT batch_id FROM reconciliation_exceptions WHERE id = $1::int8 AND resolved_at IS NULL";

const RESOLVE: &str = "
UPDATE reconciliation_exceptions SET resolved_at = greatest(now(), created_at)
WHERE id = $1::int8 AND resolved_at IS NULL";

/// A batch that ended in exception counts one more transaction matched per resolved exception,
/// and is matched once none is left open.
const SETTLE: &str = "
UPDATE reconciliation_batches AS b
SET matched_count = CASE WHEN $2::int4 = 0 THEN b.expected_count ELSE least(b.expected_count, b.matched_count + 1) END,
    matched_amount = CASE WHEN $2::int4 = 0 THEN b.expected_amount ELSE b.matched_amount END,
    status = CASE WHEN $2::int4 = 0 THEN 'matched' ELSE b.status END,
    closed_at = CASE WHEN $2::int4 = 0 THEN greatest(now(), b.updated_at, b.opened_at) ELSE b.closed_at END,
    updated_at = greatest(now(), b.updated_at, b.opened_at)
WHERE b.id = $1::int8 AND b.status = 'exception'";

pub(crate) struct Statements {
    open: Statement,
    lock_batch: Statement,
    open_exceptions: Statement,
    raise: Statement,
    progress: Statement,
    exception_batch: Statement,
    resolve: Statement,
    settle: Statement,
}

impl Statements {
    pub async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
        Ok(Statements {
            open: client.prepare(OPEN).await?,
            lock_batch: client.prepare(LOCK_BATCH).await?,
            open_exceptions: client.prepare(OPEN_EXCEPTIONS).await?,
            raise: client.prepare(RAISE).await?,
            progress: client.prepare(PROGRESS).await?,
            exception_batch: client.prepare(EXCEPTION_BATCH).await?,
            resolve: client.prepare(RESOLVE).await?,
            settle: client.prepare(SETTLE).await?,
        })
    }
}

impl FinanceJob {
    pub async fn execute(
        &self,
        client: &mut Client,
        st: &Statements,
        shared: &Shared,
    ) -> Result<bool, tokio_postgres::Error> {
        match self {
            FinanceJob::Open { account, date, expected_count, expected_amount } => {
                let date = date.to_string();
                let row = client.query_opt(&st.open, &[account, &date, expected_count, expected_amount]).await?;
                let Some(row) = row else { return Ok(false) };
                shared.world().finance.batches.push(row.get(0));
                Ok(true)
            }
            FinanceJob::Match { batch, step, during, at_end } => {
                let tx = client.transaction().await?;
                let Some(row) = tx.query_opt(&st.lock_batch, &[batch]).await? else {
                    drop(tx);
                    shared.world().finance.batches.retain(|b| b != batch);
                    return Ok(false);
                };
                let status: &str = row.get(0);
                if status != "open" && status != "matching" {
                    drop(tx);
                    shared.world().finance.batches.retain(|b| b != batch);
                    return Ok(false);
                }
                let expected: i32 = row.get(1);
                let mut matched: i32 = row.get(2);
                let mut open: i32 = tx.query_one(&st.open_exceptions, &[batch]).await?.get(0);
                let mut raised = Vec::new();
                let raise = async |e: &NewException| -> Result<i64, tokio_postgres::Error> {
                    Ok(tx.query_one(&st.raise, &[batch, &e.kind, &e.amount, &e.detail]).await?.get(0))
                };
                if let Some(e) = during {
                    raised.push(raise(e).await?);
                    open += 1;
                }
                let step = ((expected as f64 * step).ceil() as i32).max(1);
                matched = matched.saturating_add(step).min(expected - open).max(0);
                let finished = matched >= expected - open;
                let status = if !finished {
                    "matching"
                } else {
                    if let Some(e) = at_end {
                        raised.push(raise(e).await?);
                        open += 1;
                        matched = (expected - open).max(0);
                    }
                    if open > 0 { "exception" } else { "matched" }
                };
                tx.execute(&st.progress, &[batch, &matched, &status]).await?;
                tx.commit().await?;
                let mut world = shared.world();
                for id in raised {
                    push_capped(&mut world.finance.exceptions, id);
                }
                if finished {
                    world.finance.batches.retain(|b| b != batch);
                }
                Ok(true)
            }
            FinanceJob::Resolve(exception) => {
                let tx = client.transaction().await?;
                let Some(row) = tx.query_opt(&st.exception_batch, &[exception]).await? else { return Ok(false) };
                let batch: i64 = row.get(0);
                // Batch first, as matching does, so the two never wait on each other in a cycle.
                tx.query_opt(&st.lock_batch, &[&batch]).await?;
                if tx.execute(&st.resolve, &[exception]).await? != 1 {
                    return Ok(false);
                }
                let still_open: i32 = tx.query_one(&st.open_exceptions, &[&batch]).await?.get(0);
                tx.execute(&st.settle, &[&batch, &still_open]).await?;
                tx.commit().await?;
                Ok(true)
            }
        }
    }
}
