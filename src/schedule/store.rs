//! The scheduled tasks' SQL: `integration.scheduled_tasks` (one row per task: its next slot
//! and its lease) and `integration.scheduled_task_runs` (one row per run). The only module
//! that names these tables.
//!
//! Every write that ends or renews a run is fenced by `locked_by`: a worker whose lease ended
//! and whose slot another worker took over cannot overwrite the other's bookkeeping.

use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;

use super::TaskResult;

/// Runs are kept this long.
const RUN_HISTORY_DAYS: i32 = 90;

/// The database's clock: the one every worker agrees on.
pub async fn database_now(pool: &PgPool) -> Result<OffsetDateTime, sqlx::Error> {
    sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(pool)
        .await
}

/// Creates the task's row with its first slot, or, when its schedule changed, moves a slot that
/// is still to come to the new schedule's `first` (a slot already due stays due: it was missed).
pub async fn register(
    pool: &PgPool,
    task: &str,
    schedule: &str,
    first: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO integration.scheduled_tasks (task, schedule, next_run_at)
         VALUES ($1, $2, $3)
         ON CONFLICT (task) DO UPDATE
         SET schedule = EXCLUDED.schedule,
             next_run_at = CASE WHEN scheduled_tasks.next_run_at <= clock_timestamp()
                                THEN scheduled_tasks.next_run_at
                                ELSE EXCLUDED.next_run_at END
         WHERE scheduled_tasks.schedule IS DISTINCT FROM EXCLUDED.schedule",
    )
    .bind(task)
    .bind(schedule)
    .bind(first)
    .execute(pool)
    .await?;
    Ok(())
}

/// A run this worker claimed.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The slot being run.
    pub slot: OffsetDateTime,
    pub started_at: OffsetDateTime,
}

/// Takes the task's lease when its slot is due and nobody holds the lease. One statement: of
/// workers asking at once, one gets it; the others wait for its row lock and then see the lease
/// taken.
pub async fn claim(
    pool: &PgPool,
    task: &str,
    worker: &str,
    lease: Duration,
) -> Result<Option<Claim>, sqlx::Error> {
    let row: Option<(OffsetDateTime, OffsetDateTime)> = sqlx::query_as(
        "UPDATE integration.scheduled_tasks
         SET locked_by = $2, locked_until = clock_timestamp() + make_interval(secs => $3),
             last_started_at = clock_timestamp()
         WHERE task = $1 AND next_run_at <= clock_timestamp()
           AND (locked_until IS NULL OR locked_until < clock_timestamp())
         RETURNING next_run_at, last_started_at",
    )
    .bind(task)
    .bind(worker)
    .bind(lease.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(slot, started_at)| Claim { slot, started_at }))
}

/// Extends this worker's lease.
pub async fn renew(
    pool: &PgPool,
    task: &str,
    worker: &str,
    lease: Duration,
) -> Result<bool, sqlx::Error> {
    let renewed = sqlx::query(
        "UPDATE integration.scheduled_tasks
         SET locked_until = clock_timestamp() + make_interval(secs => $3)
         WHERE task = $1 AND locked_by = $2",
    )
    .bind(task)
    .bind(worker)
    .bind(lease.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(renewed.rows_affected() > 0)
}

/// Gives the lease back without finishing: the slot stays due.
pub async fn release(pool: &PgPool, task: &str, worker: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE integration.scheduled_tasks SET locked_by = NULL, locked_until = NULL
         WHERE task = $1 AND locked_by = $2",
    )
    .bind(task)
    .bind(worker)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records the run's outcome, moves the task to its `next` slot and frees the lease; adds the
/// run to the history (also when the lease was lost meanwhile: the run did happen).
pub async fn finish(
    pool: &PgPool,
    task: &str,
    worker: &str,
    claim: &Claim,
    result: &TaskResult,
    next: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    let (outcome, summary, error) = match result {
        Ok(summary) => ("success", Some(summary.as_str()), None),
        Err(error) => ("failed", None, Some(error.as_str())),
    };
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE integration.scheduled_tasks
         SET next_run_at = $3, last_finished_at = clock_timestamp(), last_outcome = $4,
             last_summary = coalesce($5, last_summary), last_error = $6,
             last_success_at = CASE WHEN $4 = 'success' THEN clock_timestamp()
                                    ELSE last_success_at END,
             consecutive_failures = CASE WHEN $4 = 'success' THEN 0
                                         ELSE consecutive_failures + 1 END,
             locked_by = NULL, locked_until = NULL
         WHERE task = $1 AND locked_by = $2",
    )
    .bind(task)
    .bind(worker)
    .bind(next)
    .bind(outcome)
    .bind(summary)
    .bind(error)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO integration.scheduled_task_runs
             (task, slot, worker, started_at, finished_at, outcome, detail)
         VALUES ($1, $2, $3, $4, clock_timestamp(), $5, $6)",
    )
    .bind(task)
    .bind(claim.slot)
    .bind(worker)
    .bind(claim.started_at)
    .bind(outcome)
    .bind(summary.or(error))
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM integration.scheduled_task_runs
         WHERE task = $1 AND started_at < clock_timestamp() - make_interval(days => $2)",
    )
    .bind(task)
    .bind(RUN_HISTORY_DAYS)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// A task as `status` shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TaskRow {
    pub task: String,
    pub schedule: String,
    #[serde(with = "time::serde::rfc3339")]
    pub next_run_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_finished_at: Option<OffsetDateTime>,
    pub last_outcome: Option<String>,
    pub last_summary: Option<String>,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_success_at: Option<OffsetDateTime>,
    pub consecutive_failures: i32,
    /// The worker running it now, if any.
    pub running_on: Option<String>,
    #[serde(skip)]
    pub locked_until: Option<OffsetDateTime>,
    #[serde(skip)]
    pub created_at: OffsetDateTime,
}

const TASK_SELECT: &str = "SELECT task, schedule, next_run_at, last_started_at, last_finished_at,
        last_outcome, last_summary, last_error, last_success_at, consecutive_failures,
        CASE WHEN locked_until > clock_timestamp() THEN locked_by END AS running_on,
        locked_until, created_at
     FROM integration.scheduled_tasks";

pub async fn task(pool: &PgPool, task: &str) -> Result<Option<TaskRow>, sqlx::Error> {
    sqlx::query_as(&format!("{TASK_SELECT} WHERE task = $1"))
        .bind(task)
        .fetch_optional(pool)
        .await
}

/// Every task a worker has set up, by name.
pub async fn tasks(pool: &PgPool) -> Result<Vec<TaskRow>, sqlx::Error> {
    sqlx::query_as(&format!("{TASK_SELECT} ORDER BY task"))
        .fetch_all(pool)
        .await
}

/// One run of a task.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RunRow {
    pub task: String,
    #[serde(with = "time::serde::rfc3339")]
    pub slot: OffsetDateTime,
    pub worker: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    pub outcome: String,
    pub detail: Option<String>,
}

/// A task's runs, oldest first.
pub async fn runs(pool: &PgPool, task: &str) -> Result<Vec<RunRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT task, slot, worker, started_at, finished_at, outcome, detail
         FROM integration.scheduled_task_runs WHERE task = $1 ORDER BY started_at, id",
    )
    .bind(task)
    .fetch_all(pool)
    .await
}
