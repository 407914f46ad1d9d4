//! The job queue's SQL: claim, complete, retry, release, heartbeat, rescue, prune.
//!
//! This module is the only one that names the table. Each of its functions is one short
//! statement in its own transaction (the claim's slow path, which isolates a row the claim
//! cannot take, is a few), so the queue itself holds no transaction open while a job runs (what
//! a job's handler does with its own transactions is the handler's business). The table
//! (`integration.enrichment_jobs`) is the truth, NOTIFY only wakes.
//! Writes that end a job are fenced by `locked_by`: a worker whose lease expired and whose job
//! was rescued and claimed by another cannot overwrite the other's result.
//!
//! Delivery is at least once: a job whose worker dies runs again after its lease ends, so what
//! a job does must be idempotent (it is: see `enrich`).

pub mod worker;

use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

pub use worker::{
    panic_message, queue_connect_options, Health, JobHandler, JobResult, Worker, WorkerOptions,
    CHANNEL, CLAIM_FAILURES_NOT_READY,
};

/// What a job enriches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// A `platforms.stockx_orders` row.
    Order,
    /// A `products.inventory` row.
    Inventory,
    /// A `platforms.stockx_orders` row whose status goes back to its Notion page.
    NotionWriteback,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Order => "order",
            JobKind::Inventory => "inventory",
            JobKind::NotionWriteback => "notion_writeback",
        }
    }

    fn parse(s: &str) -> Option<JobKind> {
        match s {
            "order" => Some(JobKind::Order),
            "inventory" => Some(JobKind::Inventory),
            "notion_writeback" => Some(JobKind::NotionWriteback),
            _ => None,
        }
    }
}

/// Where a job is in its life; the table's `state` column holds [`JobState::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its first attempt (or given back without counting one).
    Available,
    /// Claimed by a worker whose lease has not ended.
    Running,
    /// Failed an attempt, waiting for the next one.
    Retryable,
    Completed,
    /// Dead-lettered: attempts exhausted or a permanent error. `retry` brings it back.
    Failed,
}

impl JobState {
    /// Every state, in the order a job moves through them.
    pub const ALL: [JobState; 5] = [
        JobState::Available,
        JobState::Running,
        JobState::Retryable,
        JobState::Completed,
        JobState::Failed,
    ];

    /// The states of a job that has yet to finish.
    pub const OPEN: [JobState; 3] = [JobState::Available, JobState::Running, JobState::Retryable];

    /// The states of a job waiting to be claimed. A row has at most one waiting job of a kind
    /// (a partial unique index over these states), which absorbs later events for the row; a
    /// running job does not, so an edit made while it runs queues a new job.
    pub const WAITING: [JobState; 2] = [JobState::Available, JobState::Retryable];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Retryable => "retryable",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|state| state.as_str() == s)
    }

    /// Whether a job in this state has yet to finish.
    pub fn is_open(self) -> bool {
        JobState::OPEN.contains(&self)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub kind: JobKind,
    pub entity_id: Uuid,
    /// This attempt's number, from 1.
    pub attempt: i16,
    pub max_attempts: i16,
    /// Seconds from the job's creation (the row's commit, near enough) to this claim.
    pub lag_seconds: f64,
}

/// The claim statement; `$5`-using conditions can be added (one job by id, for isolating a
/// row the claim cannot take).
///
/// A job whose row has another job running is skipped, so that two jobs of one row never run
/// at once (the second one is the edit made while the first ran, and must read the new facts
/// after the first one has written). The `NOT EXISTS` probes `enrichment_jobs_running_idx`.
macro_rules! claim_sql {
    ($extra:literal) => {
        concat!(
            "WITH next AS (
                 SELECT id FROM integration.enrichment_jobs j
                 WHERE state IN ('available', 'retryable') AND run_after <= clock_timestamp()
                   AND NOT EXISTS (
                       SELECT 1 FROM integration.enrichment_jobs r
                       WHERE r.kind = j.kind AND r.entity_id = j.entity_id
                         AND r.state = 'running')",
            $extra,
            "
                 ORDER BY run_after, id
                 LIMIT $1
                 FOR UPDATE SKIP LOCKED
             )
             UPDATE integration.enrichment_jobs j
             SET state = 'running',
                 attempt = j.attempt + 1,
                 max_attempts = $4,
                 locked_by = $2,
                 locked_until = clock_timestamp() + make_interval(secs => $3),
                 attempted_at = clock_timestamp()
             FROM next
             WHERE j.id = next.id
             RETURNING j.id, j.kind, j.entity_id, j.attempt, j.max_attempts,
                       extract(epoch FROM clock_timestamp() - j.created_at)::float8"
        )
    };
}

type ClaimedRow = (i64, String, Uuid, i16, i16, f64);

fn to_jobs(rows: Vec<ClaimedRow>) -> Vec<Job> {
    rows.into_iter()
        .filter_map(|(id, kind, entity_id, attempt, max_attempts, lag)| {
            Some(Job {
                id,
                kind: JobKind::parse(&kind)?,
                entity_id,
                attempt,
                max_attempts,
                lag_seconds: lag.max(0.0),
            })
        })
        .collect()
}

/// Claims up to `limit` due jobs for `worker`, oldest first, in one statement. Each claimed
/// job gets `max_attempts` (the worker's setting) for the rest of its life.
///
/// `FOR UPDATE SKIP LOCKED` lets many workers claim at once without waiting on each other or
/// taking the same job.
pub async fn claim_next_jobs<'c>(
    pool: impl sqlx::PgExecutor<'c>,
    worker: &str,
    limit: usize,
    lease: Duration,
    max_attempts: i16,
) -> Result<Vec<Job>, sqlx::Error> {
    let rows: Vec<ClaimedRow> = sqlx::query_as(claim_sql!(""))
        .bind(limit as i64)
        .bind(worker)
        .bind(lease.as_secs_f64())
        .bind(max_attempts)
        .fetch_all(pool)
        .await?;
    Ok(to_jobs(rows))
}

/// A job the claim could not take, dead-lettered so that it no longer stops the others.
#[derive(Debug, Clone)]
pub struct Quarantined {
    pub id: i64,
    pub reason: String,
}

/// The slow path after [`claim_next_jobs`] failed with a data error (see [`is_data_error`]):
/// one row of the batch cannot be claimed (say `attempt` at the smallint maximum), and as long
/// as it is in the batch the whole statement fails, for every worker. Claims the due jobs one
/// by one instead, and dead-letters each one whose claim fails with a data error, with the
/// reason in `last_error`.
pub async fn claim_isolating_bad_rows(
    pool: &PgPool,
    worker: &str,
    limit: usize,
    lease: Duration,
    max_attempts: i16,
) -> Result<(Vec<Job>, Vec<Quarantined>), sqlx::Error> {
    let candidates: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM integration.enrichment_jobs j
         WHERE state IN ('available', 'retryable') AND run_after <= clock_timestamp()
           AND NOT EXISTS (
               SELECT 1 FROM integration.enrichment_jobs r
               WHERE r.kind = j.kind AND r.entity_id = j.entity_id AND r.state = 'running')
         ORDER BY run_after, id
         LIMIT $1",
    )
    .bind(limit as i64)
    .fetch_all(pool)
    .await?;
    let mut jobs = Vec::new();
    let mut quarantined = Vec::new();
    for id in candidates {
        let claimed: Result<Vec<ClaimedRow>, _> = sqlx::query_as(claim_sql!(" AND j.id = $5"))
            .bind(1i64)
            .bind(worker)
            .bind(lease.as_secs_f64())
            .bind(max_attempts)
            .bind(id)
            .fetch_all(pool)
            .await;
        match claimed {
            Ok(rows) => jobs.extend(to_jobs(rows)),
            Err(e) if is_data_error(&e) => {
                let reason = format!("the claim cannot take this job: {e}");
                let done = sqlx::query(
                    "UPDATE integration.enrichment_jobs
                     SET state = 'failed', outcome = 'unclaimable', last_error = $2,
                         finished_at = clock_timestamp(), locked_by = NULL, locked_until = NULL
                     WHERE id = $1 AND state IN ('available', 'retryable')",
                )
                .bind(id)
                .bind(&reason)
                .execute(pool)
                .await?;
                if done.rows_affected() > 0 {
                    quarantined.push(Quarantined { id, reason });
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok((jobs, quarantined))
}

/// An error that says the data is wrong, so that running the same statement (or the same job)
/// again will fail again: a value PostgreSQL or our types cannot hold (`NaN` in a price, a date
/// out of range, a counter past the smallint maximum), or a violated NOT NULL or CHECK. A unique
/// or foreign-key violation is not one: it can be a race that the next attempt does not meet.
pub fn is_data_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("22") || code == "23502" || code == "23514"),
        _ => false,
    }
}

/// A finished job, for the batch completer.
#[derive(Debug, Clone)]
pub struct Completion {
    pub id: i64,
    pub outcome: &'static str,
}

/// Marks jobs completed, many in one statement (River's batch completer idea).
pub async fn complete_jobs<'c>(
    pool: impl sqlx::PgExecutor<'c>,
    worker: &str,
    done: &[Completion],
) -> Result<u64, sqlx::Error> {
    if done.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = done.iter().map(|c| c.id).collect();
    let outcomes: Vec<&str> = done.iter().map(|c| c.outcome).collect();
    let result = sqlx::query(
        "UPDATE integration.enrichment_jobs j
         SET state = 'completed', outcome = d.outcome, finished_at = clock_timestamp(),
             locked_by = NULL, locked_until = NULL, last_error = NULL
         FROM unnest($1::bigint[], $2::text[]) AS d(id, outcome)
         WHERE j.id = d.id AND j.state = 'running' AND j.locked_by = $3",
    )
    .bind(&ids)
    .bind(&outcomes)
    .bind(worker)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// In a statement on a running job `j` going back to the queue: whether its row has a newer
/// waiting job (an edit made while it ran), which then does its work instead.
macro_rules! newer_waits {
    () => {
        "EXISTS (SELECT 1 FROM integration.enrichment_jobs w
                 WHERE w.kind = j.kind AND w.entity_id = j.entity_id
                   AND w.state IN ('available', 'retryable')) AS newer_waits"
    };
}

/// What became of a job that did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureFate {
    /// Back in the queue at `run_after`.
    Retryable,
    /// Dead-lettered (attempts exhausted or a permanent error).
    Failed,
    /// It would have gone back to the queue, but its row has a newer waiting job (an edit made
    /// while it ran), which does the same work on the new facts: finished as `completed` with
    /// outcome `superseded`, its error kept.
    Superseded,
}

impl FailureFate {
    fn from_row(state: &str, superseded: bool) -> FailureFate {
        if superseded {
            FailureFate::Superseded
        } else if JobState::parse(state) == Some(JobState::Retryable) {
            FailureFate::Retryable
        } else {
            FailureFate::Failed
        }
    }
}

/// Records a failed attempt: retryable after `delay` when attempts remain and `retry` is true,
/// otherwise dead-lettered with the error kept. A job that would be retried while its row has
/// a newer waiting job is superseded by it instead (see [`FailureFate::Superseded`]).
pub async fn fail_attempt(
    pool: &PgPool,
    worker: &str,
    job_id: i64,
    error: &str,
    outcome: &str,
    retry: bool,
    delay: Duration,
) -> Result<Option<FailureFate>, sqlx::Error> {
    let row: Option<(String, bool)> = sqlx::query_as(concat!(
        "WITH target AS (
             SELECT j.id, $4 AND j.attempt < j.max_attempts AS again,
                    ",
        newer_waits!(),
        "
             FROM integration.enrichment_jobs j
             WHERE j.id = $1 AND j.state = 'running' AND j.locked_by = $6
         )
         UPDATE integration.enrichment_jobs j
         SET state = CASE WHEN t.again AND t.newer_waits THEN 'completed'
                          WHEN t.again THEN 'retryable' ELSE 'failed' END,
             run_after = CASE WHEN t.again AND NOT t.newer_waits
                              THEN clock_timestamp() + make_interval(secs => $5)
                              ELSE j.run_after END,
             finished_at = CASE WHEN t.again AND NOT t.newer_waits THEN NULL
                                ELSE clock_timestamp() END,
             last_error = $2,
             outcome = CASE WHEN t.again AND t.newer_waits THEN 'superseded' ELSE $3 END,
             locked_by = NULL, locked_until = NULL
         FROM target t
         WHERE j.id = t.id AND j.state = 'running' AND j.locked_by = $6
         RETURNING j.state, t.again AND t.newer_waits"
    ))
    .bind(job_id)
    .bind(error)
    .bind(outcome)
    .bind(retry)
    .bind(delay.as_secs_f64())
    .bind(worker)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(state, superseded)| FailureFate::from_row(&state, superseded)))
}

/// Gives jobs back without counting the attempt: on shutdown, or while StockX cannot be asked
/// (credentials refused, a bot-protection block, a rate limit that outlasted the client's own
/// retries): the jobs wait; they did not fail. A job whose row has a newer waiting job is
/// superseded by it instead of going back.
pub async fn release_jobs(
    pool: &PgPool,
    worker: &str,
    ids: &[i64],
    delay: Duration,
    reason: Option<&str>,
) -> Result<u64, sqlx::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    let result = sqlx::query(concat!(
        "WITH target AS (
             SELECT j.id,
                    ",
        newer_waits!(),
        "
             FROM integration.enrichment_jobs j
             WHERE j.id = ANY($1) AND j.state = 'running' AND j.locked_by = $2
         )
         UPDATE integration.enrichment_jobs j
         SET state = CASE WHEN t.newer_waits THEN 'completed'
                          WHEN j.attempt > 1 THEN 'retryable' ELSE 'available' END,
             outcome = CASE WHEN t.newer_waits THEN 'superseded' ELSE j.outcome END,
             finished_at = CASE WHEN t.newer_waits THEN clock_timestamp() END,
             attempt = greatest(j.attempt - 1, 0),
             run_after = CASE WHEN t.newer_waits THEN j.run_after
                              ELSE clock_timestamp() + make_interval(secs => $3) END,
             locked_by = NULL, locked_until = NULL,
             last_error = coalesce($4, j.last_error)
         FROM target t
         WHERE j.id = t.id AND j.state = 'running' AND j.locked_by = $2"
    ))
    .bind(ids)
    .bind(worker)
    .bind(delay.as_secs_f64())
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// Renews the lease of the jobs this worker is running.
pub async fn heartbeat(
    pool: &PgPool,
    worker: &str,
    ids: &[i64],
    lease: Duration,
) -> Result<u64, sqlx::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    let result = sqlx::query(
        "UPDATE integration.enrichment_jobs
         SET locked_until = clock_timestamp() + make_interval(secs => $3)
         WHERE id = ANY($1) AND state = 'running' AND locked_by = $2",
    )
    .bind(ids)
    .bind(worker)
    .bind(lease.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// Returns jobs whose lease ended (their worker died or hung) to the queue; the attempt counts.
/// Jobs that used their last attempt are dead-lettered; a job whose row has a newer waiting job
/// is superseded by it.
///
/// `run_after` is left as it was: the job was claimed when it reached the front of the line,
/// so it goes back to the front, not behind whatever was queued while its worker was dead.
pub async fn rescue_expired_jobs(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(concat!(
        "WITH expired AS (
             SELECT j.id, j.attempt < j.max_attempts AS again,
                    ",
        newer_waits!(),
        "
             FROM integration.enrichment_jobs j
             WHERE j.state = 'running' AND j.locked_until < clock_timestamp()
             FOR UPDATE OF j SKIP LOCKED
         )
         UPDATE integration.enrichment_jobs j
         SET state = CASE WHEN e.again AND e.newer_waits THEN 'completed'
                          WHEN e.again THEN 'retryable' ELSE 'failed' END,
             outcome = CASE WHEN e.again AND e.newer_waits THEN 'superseded' ELSE j.outcome END,
             finished_at = CASE WHEN e.again AND NOT e.newer_waits THEN NULL
                                ELSE clock_timestamp() END,
             last_error = 'lease expired: worker ' || coalesce(j.locked_by, '?')
                          || ' stopped heartbeating (crashed or hung)',
             locked_by = NULL, locked_until = NULL
         FROM expired e WHERE j.id = e.id"
    ))
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// Deletes finished jobs older than `retention`.
pub async fn prune_finished_jobs(pool: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "DELETE FROM integration.enrichment_jobs
         WHERE state IN ('completed', 'failed')
           AND finished_at < clock_timestamp() - make_interval(secs => $1)",
    )
    .bind(retention.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// `stockx-sync retry`: failed jobs back to the queue with their attempts reset. With no ids,
/// every failed job.
///
/// One job per row comes back (its newest failed one; a row collects several while StockX is
/// down, one per worker start), and none for a row that has a waiting job already: that job
/// does the same work.
pub async fn retry_failed_jobs(pool: &PgPool, ids: Option<&[i64]>) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "WITH chosen AS (
             SELECT DISTINCT ON (f.kind, f.entity_id) f.id
             FROM integration.enrichment_jobs f
             WHERE f.state = 'failed' AND ($1::bigint[] IS NULL OR f.id = ANY($1))
               AND NOT EXISTS (
                   SELECT 1 FROM integration.enrichment_jobs w
                   WHERE w.kind = f.kind AND w.entity_id = f.entity_id
                     AND w.state IN ('available', 'retryable'))
             ORDER BY f.kind, f.entity_id, f.id DESC
         )
         UPDATE integration.enrichment_jobs j
         SET state = 'available', attempt = 0, run_after = clock_timestamp(),
             finished_at = NULL, outcome = NULL
         FROM chosen WHERE j.id = chosen.id",
    )
    .bind(ids)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// Enqueues jobs for rows that still wait for enrichment (see [`crate::sales::pending_enrichment`]),
/// at most one waiting job per row, as the triggers do. Returns how many jobs were added.
pub async fn enqueue_pending(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let pending = crate::sales::pending_enrichment(pool).await?;
    let mut added = 0;
    for (kind, ids) in [
        (JobKind::Order, &pending.orders),
        (JobKind::Inventory, &pending.inventory),
    ] {
        added += enqueue_jobs(pool, kind, ids, Duration::ZERO).await?;
    }
    Ok(added)
}

/// Enqueues a job of `kind` for each of `ids`, due after `delay`, and wakes the workers. A row
/// that already has an open job of that kind keeps it (that job will see the row as it is
/// then). Returns how many jobs were added. One statement: the INSERT and the NOTIFY commit
/// together, in one round trip.
pub async fn enqueue_jobs(
    pool: &PgPool,
    kind: JobKind,
    ids: &[Uuid],
    delay: Duration,
) -> Result<u64, sqlx::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    let added: i64 = sqlx::query_scalar(
        "WITH added AS (
             INSERT INTO integration.enrichment_jobs (kind, entity_id, run_after)
             SELECT $1, id, clock_timestamp() + make_interval(secs => $3)
             FROM unnest($2::uuid[]) AS ids(id)
             ON CONFLICT (kind, entity_id) WHERE state IN ('available', 'retryable')
             DO NOTHING
             RETURNING 1
         ), counted AS (SELECT count(*) AS n FROM added)
         SELECT counted.n FROM counted
         LEFT JOIN LATERAL (SELECT pg_notify($4, $1) WHERE counted.n > 0) AS woke ON true",
    )
    .bind(kind.as_str())
    .bind(ids)
    .bind(delay.as_secs_f64())
    .bind(CHANNEL)
    .fetch_one(pool)
    .await?;
    Ok(added as u64)
}

/// How many jobs are in one state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateCount {
    pub state: JobState,
    pub jobs: i64,
}

/// Jobs per state: every state of [`JobState::ALL`], in that order, zero included.
pub async fn count_by_state(pool: &PgPool) -> Result<Vec<StateCount>, sqlx::Error> {
    let names: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT s.state, count(j.id)
         FROM unnest($1::text[]) WITH ORDINALITY AS s(state, n)
         LEFT JOIN integration.enrichment_jobs j ON j.state = s.state
         GROUP BY s.state, s.n ORDER BY s.n",
    )
    .bind(&names)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(state, jobs)| {
            Some(StateCount {
                state: JobState::parse(&state)?,
                jobs,
            })
        })
        .collect())
}

/// How many jobs are in any of `states`.
pub async fn count_jobs(pool: &PgPool, states: &[JobState]) -> Result<i64, sqlx::Error> {
    let names: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
    sqlx::query_scalar("SELECT count(*) FROM integration.enrichment_jobs WHERE state = ANY($1)")
        .bind(&names)
        .fetch_one(pool)
        .await
}

/// Jobs of `kind` waiting (due or not) or running: the size of a backlog.
pub async fn count_open_jobs_of_kind(pool: &PgPool, kind: JobKind) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM integration.enrichment_jobs
         WHERE kind = $1 AND state IN ('available', 'retryable', 'running')",
    )
    .bind(kind.as_str())
    .fetch_one(pool)
    .await
}

/// Order and inventory jobs due or running: the enrichment of new sales, which the market
/// refresh gives way to (a retry waiting out its backoff does not count).
pub async fn count_enrichment_due(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM integration.enrichment_jobs
         WHERE kind IN ('order', 'inventory')
           AND (state = 'running'
                OR (state IN ('available', 'retryable') AND run_after <= clock_timestamp()))",
    )
    .fetch_one(pool)
    .await
}

/// The rows that jobs of `kind` waiting (due or not) or running are about.
pub async fn open_job_entities(pool: &PgPool, kind: JobKind) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT entity_id FROM integration.enrichment_jobs
         WHERE kind = $1 AND state IN ('available', 'retryable', 'running')",
    )
    .bind(kind.as_str())
    .fetch_all(pool)
    .await
}

/// The job that has waited longest to run (due or not).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct WaitingJob {
    pub id: i64,
    pub kind: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Seconds since the job was created.
    pub age_seconds: f64,
}

pub async fn oldest_waiting_job(pool: &PgPool) -> Result<Option<WaitingJob>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, kind, created_at,
                extract(epoch FROM clock_timestamp() - created_at)::float8 AS age_seconds
         FROM integration.enrichment_jobs
         WHERE state IN ('available', 'retryable')
         ORDER BY created_at, id LIMIT 1",
    )
    .fetch_optional(pool)
    .await
}

/// A dead-lettered job.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct FailedJob {
    pub id: i64,
    pub kind: String,
    pub entity_id: Uuid,
    pub attempt: i16,
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    pub last_error: Option<String>,
}

/// The last `limit` jobs that failed for good, newest first.
pub async fn recent_failures(pool: &PgPool, limit: i64) -> Result<Vec<FailedJob>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, kind, entity_id, attempt, finished_at, last_error
         FROM integration.enrichment_jobs WHERE state = 'failed'
         ORDER BY finished_at DESC, id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Numbers for the queue gauges.
#[derive(Debug, Default, Clone)]
pub struct QueueStats {
    pub by_state: Vec<StateCount>,
    /// Seconds the longest-due job has waited past its `run_after`.
    pub oldest_available_age_seconds: f64,
}

pub async fn queue_stats(pool: &PgPool) -> Result<QueueStats, sqlx::Error> {
    let by_state = count_by_state(pool).await?;
    let oldest: f64 = sqlx::query_scalar(
        "SELECT coalesce(extract(epoch FROM clock_timestamp() - min(run_after))::float8, 0)
         FROM integration.enrichment_jobs
         WHERE state IN ('available', 'retryable') AND run_after <= clock_timestamp()",
    )
    .fetch_one(pool)
    .await?;
    Ok(QueueStats {
        by_state,
        oldest_available_age_seconds: oldest.max(0.0),
    })
}

/// Inserts `n` jobs of `kind` for rows that do not exist, for the benchmark (whose handler
/// never reads the row).
pub async fn insert_placeholder_jobs(
    pool: &PgPool,
    kind: JobKind,
    n: u64,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT INTO integration.enrichment_jobs (kind, entity_id)
         SELECT $1, gen_random_uuid() FROM generate_series(1, $2)",
    )
    .bind(kind.as_str())
    .bind(n as i64)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Deletes every job: the benchmark's scratch database, where no worker runs, after inserting
/// its rows.
pub async fn delete_all_jobs(pool: &PgPool) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM integration.enrichment_jobs")
        .execute(pool)
        .await?
        .rows_affected())
}

/// `VACUUM ANALYZE` of the jobs table: after a bulk insert, so that the planner knows its size.
pub async fn vacuum_analyze(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("VACUUM ANALYZE integration.enrichment_jobs")
        .execute(pool)
        .await?;
    Ok(())
}

/// River's retry schedule: attempt⁴ seconds ± 10 % (1 s, 16 s, 81 s, ...), at least what the
/// server asked for with `Retry-After`.
pub fn retry_delay(attempt: i16, retry_after: Option<Duration>) -> Duration {
    use rand::Rng;
    let base = f64::from(attempt.max(1)).powi(4);
    let jitter = rand::rng().random_range(-0.1..=0.1);
    let backoff = Duration::from_secs_f64(base * (1.0 + jitter));
    match retry_after {
        Some(wait) if wait > backoff => wait,
        _ => backoff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_states_read_back_what_they_write() {
        for state in JobState::ALL {
            assert_eq!(JobState::parse(state.as_str()), Some(state));
        }
        assert_eq!(JobState::parse("done"), None);
        let open: Vec<JobState> = JobState::ALL.into_iter().filter(|s| s.is_open()).collect();
        assert_eq!(open, JobState::OPEN);
    }

    #[test]
    fn backoff_grows_as_the_fourth_power_with_ten_percent_jitter() {
        for (attempt, base) in [(1, 1.0), (2, 16.0), (3, 81.0)] {
            for _ in 0..50 {
                let d = retry_delay(attempt, None).as_secs_f64();
                assert!(
                    d >= base * 0.9 - 1e-9 && d <= base * 1.1 + 1e-9,
                    "{attempt}: {d}"
                );
            }
        }
    }

    #[test]
    fn retry_after_wins_when_longer() {
        let d = retry_delay(1, Some(Duration::from_secs(30)));
        assert_eq!(d, Duration::from_secs(30));
        let d = retry_delay(3, Some(Duration::from_secs(1)));
        assert!(d.as_secs_f64() > 70.0);
    }
}
