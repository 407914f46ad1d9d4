//! The worker: wakes on NOTIFY, claims jobs, runs them, records what happened.
//!
//! Tasks of one worker process, all stopped by one `CancellationToken`:
//! - the **listener** holds one dedicated LISTEN connection on `stockx_sync_jobs`, checks it
//!   every few seconds (`pg_listening_channels()`), reconnects with capped backoff and wakes
//!   the claimer after every (re)connect so nothing that arrived meanwhile waits for the poll;
//! - the **claimer** claims as many due jobs as it has free slots, in one statement, and
//!   otherwise sleeps until a NOTIFY, a freed slot or the jittered poll (the safety net);
//! - each claimed job runs in its own task; its result goes to the **completer**, which marks
//!   completions in batches (one UPDATE for many jobs);
//! - the **keeper** renews the leases of running jobs (heartbeat), returns jobs whose lease
//!   expired (another worker died) every sixth of the lease (at most 5 s), prunes finished
//!   jobs and refreshes the queue gauges.
//!
//! No job can wedge the worker: a handler that panics fails its attempt like any error (the
//! panic message in `last_error`), and a row the claim cannot take is dead-lettered so the
//! others are still claimed. A claim that keeps failing shows in `/readyz`.
//!
//! On shutdown the claimer stops, running jobs get `shutdown_grace` to finish, the rest are
//! released (their attempt not counted), and the completer flushes.

use std::collections::{HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use rand::Rng;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool, Postgres};
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::QueueCommit;
use crate::metrics as m;
use crate::queue::{self, Completion, FailureFate, Job};

/// The NOTIFY channel the triggers use.
pub const CHANNEL: &str = "stockx_sync_jobs";

/// What a job's run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    /// Done; the label is the outcome (`enriched`, `not_found`, `validated`).
    Completed(&'static str),
    /// Failed; retried with backoff while attempts remain when `transient`, else dead-lettered.
    Failed {
        message: String,
        transient: bool,
        retry_after: Option<Duration>,
    },
    /// Not attempted (StockX refused our credentials, blocked us, or kept answering 429): back
    /// to the queue after `delay`, the attempt not counted.
    Postponed { reason: String, delay: Duration },
    /// Not attempted because another job is fetching what it needs (an order list in bulk):
    /// back to the queue after `delay`, the attempt not counted, logged at debug level only
    /// (a backfill defers thousands of jobs; nothing is wrong).
    Deferred { reason: String, delay: Duration },
}

/// Runs one job. The real one is `enrich::Enricher`; the benchmark uses a no-op.
pub trait JobHandler: Send + Sync + 'static {
    fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, JobResult>;
}

/// Settings of one worker process.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Identifies this process in `locked_by` (host:pid:random).
    pub id: String,
    pub concurrency: usize,
    pub lease: Duration,
    /// Attempts before a job is dead-lettered; each job gets it when claimed.
    pub max_attempts: i16,
    pub poll_interval: Duration,
    pub retention: Duration,
    pub shutdown_grace: Duration,
    /// No LISTEN (PgBouncer in transaction mode): poll only.
    pub poll_only: bool,
}

impl WorkerOptions {
    pub fn from_settings(settings: &crate::config::WorkerSettings) -> Self {
        WorkerOptions {
            id: worker_id(),
            concurrency: settings.concurrency,
            lease: Duration::from_secs(settings.lease_secs),
            max_attempts: settings.max_attempts,
            poll_interval: Duration::from_millis(settings.poll_interval_ms),
            retention: Duration::from_secs(u64::from(settings.retention_days) * 86_400),
            shutdown_grace: Duration::from_secs(settings.shutdown_grace_secs),
            poll_only: settings.poll_only,
        }
    }
}

/// Connection settings for the queue's own statements (claim, complete, heartbeat): their
/// `synchronous_commit` as configured (`worker.queue_synchronous_commit`, default `off`: see
/// [`QueueCommit`] for why that is safe). `server` leaves the connect options as they are.
pub fn queue_connect_options(
    options: sqlx::postgres::PgConnectOptions,
    commit: QueueCommit,
) -> sqlx::postgres::PgConnectOptions {
    match commit.setting() {
        Some(value) => options.options([("synchronous_commit", value)]),
        None => options,
    }
}

/// `hostname:pid:random`, unique per process.
pub fn worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    let tag: u32 = rand::rng().random();
    format!("{host}:{}:{tag:08x}", std::process::id())
}

/// Claim failures in a row after which `/readyz` reports the claimer (a single failure, such
/// as a dropped connection, is retried within a second and is no reason to page anyone).
pub const CLAIM_FAILURES_NOT_READY: u32 = 3;

/// State shared with the HTTP server's `/readyz`.
#[derive(Debug, Default)]
pub struct Health {
    pub listener_up: AtomicBool,
    /// Why jobs are being postponed (e.g. credentials refused), if they are.
    pub blocked_reason: Mutex<Option<String>>,
    /// Claims that failed in a row (0 after a claim that worked).
    pub claim_failures: AtomicU32,
    /// The last claim's error, while claims fail.
    pub claim_error: Mutex<Option<String>>,
}

impl Health {
    /// Why the claimer is not ready: it failed [`CLAIM_FAILURES_NOT_READY`] times in a row.
    pub fn claimer_problem(&self) -> Option<String> {
        let failures = self.claim_failures.load(Ordering::Relaxed);
        if failures < CLAIM_FAILURES_NOT_READY {
            return None;
        }
        let error = lock(&self.claim_error).clone().unwrap_or_default();
        Some(format!(
            "claiming jobs failed {failures} times in a row: {error}"
        ))
    }

    fn claim_succeeded(&self) {
        if self.claim_failures.swap(0, Ordering::Relaxed) > 0 {
            *lock(&self.claim_error) = None;
        }
    }

    fn claim_failed(&self, error: &sqlx::Error) -> u32 {
        *lock(&self.claim_error) = Some(error.to_string());
        self.claim_failures.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// A mutex guard even if another thread panicked while holding it: the data here (a set of
/// ids, a reason) stays consistent, and one panic must not turn into a panic everywhere.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A worker process's queue side. Build with [`Worker::new`], run with [`Worker::run`].
pub struct Worker {
    pool: PgPool,
    options: WorkerOptions,
    handler: Arc<dyn JobHandler>,
    health: Arc<Health>,
}

struct Shared {
    pool: PgPool,
    options: WorkerOptions,
    handler: Arc<dyn JobHandler>,
    health: Arc<Health>,
    wake: Notify,
    running: Mutex<HashSet<i64>>,
    slots: Arc<Semaphore>,
    completions: mpsc::UnboundedSender<Completion>,
}

impl Worker {
    pub fn new(pool: PgPool, options: WorkerOptions, handler: Arc<dyn JobHandler>) -> Self {
        Self::with_health(pool, options, handler, Arc::new(Health::default()))
    }

    /// With a `Health` shared with others (the HTTP server, the job handler).
    pub fn with_health(
        pool: PgPool,
        options: WorkerOptions,
        handler: Arc<dyn JobHandler>,
        health: Arc<Health>,
    ) -> Self {
        Worker {
            pool,
            options,
            handler,
            health,
        }
    }

    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// Runs until `shutdown` is cancelled, then stops gracefully.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), sqlx::Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            slots: Arc::new(Semaphore::new(self.options.concurrency)),
            pool: self.pool,
            options: self.options,
            handler: self.handler,
            health: self.health,
            wake: Notify::new(),
            running: Mutex::new(HashSet::new()),
            completions: tx,
        });
        tracing::info!(
            worker = %shared.options.id,
            concurrency = shared.options.concurrency,
            lease_s = shared.options.lease.as_secs_f64(),
            poll_only = shared.options.poll_only,
            "worker started"
        );
        let stop_background = CancellationToken::new();
        let completer = tokio::spawn(run_completer(
            shared.pool.clone(),
            shared.options.id.clone(),
            shared.options.concurrency,
            rx,
        ));
        let keeper = tokio::spawn(run_keeper(shared.clone(), stop_background.clone()));
        let listener = (!shared.options.poll_only)
            .then(|| tokio::spawn(run_listener(shared.clone(), stop_background.clone())));

        let mut jobs = JoinSet::new();
        run_claimer(&shared, &mut jobs, &shutdown).await;

        // Graceful stop: let running jobs finish within the grace period, then release the rest.
        let deadline = tokio::time::sleep(shared.options.shutdown_grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = jobs.join_next() => if next.is_none() { break },
                _ = &mut deadline => {
                    jobs.abort_all();
                    while jobs.join_next().await.is_some() {}
                    break;
                }
            }
        }
        let leftover: Vec<i64> = lock(&shared.running).drain().collect();
        if !leftover.is_empty() {
            let n = queue::release_jobs(
                &shared.pool,
                &shared.options.id,
                &leftover,
                Duration::ZERO,
                None,
            )
            .await?;
            tracing::warn!(jobs = n, "released jobs still running at shutdown");
        }
        stop_background.cancel();
        if let Some(listener) = listener {
            let _ = listener.await;
        }
        let _ = keeper.await;
        drop(shared);
        let _ = completer.await;
        tracing::info!("worker stopped");
        Ok(())
    }
}

/// Claims while there is room and due jobs; sleeps otherwise.
///
/// Up to `concurrency` jobs run at once; up to as many more are claimed ahead into a local
/// buffer (their leases renewed like running jobs'), so that a slot that frees is filled at
/// once. A claim goes out when there is room for at least `concurrency` jobs, or when nothing
/// is waiting to start (then a single new job starts at once): claims of one or two jobs cost
/// a round trip each, which is what held the worker well below its SQL's own ceiling.
///
/// The claimer keeps one connection for itself: a statement on a pooled connection costs two
/// more round trips (sqlx pings a connection when it goes back to the pool).
async fn run_claimer(shared: &Arc<Shared>, jobs: &mut JoinSet<()>, shutdown: &CancellationToken) {
    let capacity = shared.options.concurrency * 2;
    let mut buffer: VecDeque<Job> = VecDeque::with_capacity(capacity);
    // The claimer keeps one connection of its own (no pool round trip per claim).
    let mut conn: Option<PoolConnection<Postgres>> = None;
    while !shutdown.is_cancelled() {
        // Reap finished tasks so the JoinSet does not grow.
        while jobs.try_join_next().is_some() {}
        // Start what the free slots allow.
        while !buffer.is_empty() {
            let Ok(permit) = shared.slots.clone().try_acquire_owned() else {
                break;
            };
            let Some(job) = buffer.pop_front() else { break };
            let shared = shared.clone();
            jobs.spawn(async move {
                run_job(&shared, job).await;
                drop(permit);
            });
        }
        let in_flight =
            shared.options.concurrency - shared.slots.available_permits() + buffer.len();
        let room = capacity.saturating_sub(in_flight);
        let worth_a_claim = room >= shared.options.concurrency || (buffer.is_empty() && room > 0);
        if !worth_a_claim {
            tokio::select! {
                permit = shared.slots.acquire() => drop(permit),
                _ = shutdown.cancelled() => break,
            }
            continue;
        }
        let claimed = match claim(shared, &mut conn, room).await {
            Ok(claimed) => {
                shared.health.claim_succeeded();
                if !claimed.is_empty() {
                    BATCHES.claims.fetch_add(1, Ordering::Relaxed);
                    BATCHES
                        .claimed
                        .fetch_add(claimed.len() as u64, Ordering::Relaxed);
                }
                claimed
            }
            Err(e) => {
                // Back to the pool, which closes it if it is broken; the next claim takes
                // another.
                conn = None;
                let failures = shared.health.claim_failed(&e);
                let wait = capped_backoff(failures);
                tracing::warn!(error = %e, failures, retry_in_ms = wait.as_millis() as u64, "claim failed");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {},
                    _ = shutdown.cancelled() => break,
                }
                continue;
            }
        };
        let got_any = !claimed.is_empty();
        {
            let mut running = lock(&shared.running);
            for job in &claimed {
                running.insert(job.id);
                metrics::histogram!(m::JOB_LAG_SECONDS).record(job.lag_seconds);
            }
        }
        buffer.extend(claimed);
        if got_any {
            continue;
        }
        if !buffer.is_empty() {
            // Nothing more is due; wait until a buffered job can start.
            tokio::select! {
                permit = shared.slots.acquire() => drop(permit),
                _ = shutdown.cancelled() => break,
            }
            continue;
        }
        let poll = jittered(shared.options.poll_interval);
        tokio::select! {
            _ = shared.wake.notified() => {},
            _ = tokio::time::sleep(poll) => {},
            _ = shutdown.cancelled() => break,
        }
    }
    // Claimed but never started: back to the queue (the caller releases what `running` holds).
    drop(buffer);
}

/// One claim: the one-statement claim, or, when a row in the batch makes it fail with a data
/// error, the slow path that dead-letters that row and claims the rest.
async fn claim(
    shared: &Shared,
    conn: &mut Option<PoolConnection<Postgres>>,
    room: usize,
) -> Result<Vec<Job>, sqlx::Error> {
    let options = &shared.options;
    let claimed = queue::claim_next_jobs(
        held(&shared.pool, conn).await?,
        &options.id,
        room,
        options.lease,
        options.max_attempts,
    )
    .await;
    match claimed {
        Err(e) if queue::is_data_error(&e) => {
            tracing::warn!(error = %e, "the claim failed on a row's data; claiming one by one");
            let (jobs, quarantined) = queue::claim_isolating_bad_rows(
                &shared.pool,
                &options.id,
                room,
                options.lease,
                options.max_attempts,
            )
            .await?;
            for bad in quarantined {
                tracing::error!(job = bad.id, reason = %bad.reason, "dead-lettered a job the claim cannot take");
            }
            Ok(jobs)
        }
        other => other,
    }
}

/// The text of a panic's payload (`panic!` with a literal or with a format).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

async fn run_job(shared: &Shared, job: Job) {
    let kind = job.kind.as_str();
    let started = Instant::now();
    let span = tracing::info_span!("job", id = job.id, kind, attempt = job.attempt);
    // A panic is the handler's bug or a row it cannot read; either way it would happen again,
    // so it fails the attempt for good (and must not leave the job `running` under a lease the
    // heartbeat renews forever).
    let handler = shared.handler.clone();
    let run = AssertUnwindSafe(async { handler.run(&job).await }).catch_unwind();
    let result = match tracing::Instrument::instrument(run, span.clone()).await {
        Ok(result) => result,
        Err(payload) => JobResult::Failed {
            message: format!("the job panicked: {}", panic_message(payload.as_ref())),
            transient: false,
            retry_after: None,
        },
    };
    let elapsed = started.elapsed();
    metrics::histogram!(m::JOB_DURATION_SECONDS, "kind" => kind).record(elapsed.as_secs_f64());
    let _enter = span.enter();
    let duration_ms = elapsed.as_millis() as u64;
    let deferred = matches!(result, JobResult::Deferred { .. });
    match result {
        JobResult::Completed(outcome) => {
            lock(&shared.running).remove(&job.id);
            metrics::counter!(m::JOBS_TOTAL, "kind" => kind, "outcome" => outcome).increment(1);
            tracing::info!(outcome, duration_ms, "job done");
            let _ = shared.completions.send(Completion {
                id: job.id,
                outcome,
            });
        }
        JobResult::Failed {
            message,
            transient,
            retry_after,
        } => {
            let delay = queue::retry_delay(job.attempt, retry_after);
            let fate = queue::fail_attempt(
                &shared.pool,
                &shared.options.id,
                job.id,
                &message,
                "error",
                transient,
                delay,
            )
            .await;
            lock(&shared.running).remove(&job.id);
            match fate {
                Ok(Some(FailureFate::Retryable)) => {
                    metrics::counter!(m::JOBS_TOTAL, "kind" => kind, "outcome" => "retried")
                        .increment(1);
                    tracing::warn!(
                        outcome = "retried",
                        duration_ms,
                        retry_in_s = delay.as_secs_f64(),
                        error = %message,
                        "job failed, will retry"
                    );
                }
                Ok(Some(FailureFate::Failed)) => {
                    metrics::counter!(m::JOBS_TOTAL, "kind" => kind, "outcome" => "failed")
                        .increment(1);
                    tracing::error!(outcome = "failed", duration_ms, error = %message, "job failed for good");
                }
                Ok(Some(FailureFate::Superseded)) => {
                    metrics::counter!(m::JOBS_TOTAL, "kind" => kind, "outcome" => "superseded")
                        .increment(1);
                    tracing::warn!(outcome = "superseded", duration_ms, error = %message,
                        "job failed; a newer job of its row (an edit made meanwhile) does its work");
                }
                Ok(None) => tracing::warn!("job was taken over after its lease expired"),
                Err(e) => {
                    tracing::error!(error = %e, "could not record the job's failure; the lease will return it")
                }
            }
        }
        JobResult::Postponed { reason, delay } | JobResult::Deferred { reason, delay } => {
            let released = queue::release_jobs(
                &shared.pool,
                &shared.options.id,
                &[job.id],
                delay,
                Some(&reason),
            )
            .await;
            lock(&shared.running).remove(&job.id);
            if let Err(e) = released {
                tracing::error!(error = %e, "could not postpone the job; the lease will return it");
            }
            if deferred {
                tracing::debug!(outcome = "deferred", reason = %reason, "job deferred");
            } else {
                tracing::warn!(outcome = "postponed", reason = %reason, "job postponed");
            }
        }
    }
}

/// How long the completer waits for more completions when it has fewer than `concurrency`:
/// one round trip then marks a full batch instead of one job (a third of the statements did
/// before). A job's completion is only its bookkeeping; the job's own writes are committed.
const COMPLETION_LINGER: Duration = Duration::from_millis(2);

/// Marks completions in batches: whatever arrived while the previous batch was written, topped
/// up for at most [`COMPLETION_LINGER`]. Keeps one connection for itself (no pings).
async fn run_completer(
    pool: PgPool,
    worker: String,
    target: usize,
    mut rx: mpsc::UnboundedReceiver<Completion>,
) {
    const MAX_BATCH: usize = 1000;
    let mut batch = Vec::with_capacity(256);
    let mut conn: Option<PoolConnection<Postgres>> = None;
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let deadline = tokio::time::Instant::now() + COMPLETION_LINGER;
        while batch.len() < target.min(MAX_BATCH) {
            let more = MAX_BATCH - batch.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, more)).await {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
        let mut attempt = 0u32;
        loop {
            let result = match held(&pool, &mut conn).await {
                Ok(c) => queue::complete_jobs(c, &worker, &batch).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(_) => {
                    BATCHES.completes.fetch_add(1, Ordering::Relaxed);
                    BATCHES
                        .completed
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    break;
                }
                Err(e) => {
                    conn = None;
                    attempt += 1;
                    if attempt > 5 {
                        tracing::error!(error = %e, jobs = batch.len(), "could not mark jobs completed; they will run again after their lease");
                        break;
                    }
                    tokio::time::sleep(capped_backoff(attempt)).await;
                }
            }
        }
        batch.clear();
    }
}

/// A connection kept by one task (the claimer, the completer), taken from the pool when it has
/// none. Giving it back after an error lets the pool close it if it is broken.
async fn held<'a>(
    pool: &PgPool,
    slot: &'a mut Option<PoolConnection<Postgres>>,
) -> Result<&'a mut PgConnection, sqlx::Error> {
    let conn = match slot.take() {
        Some(conn) => conn,
        None => pool.acquire().await?,
    };
    Ok(&mut **slot.insert(conn))
}

/// Claim and completion statements and the jobs they carried, since the process started: the
/// benchmark reports the average batch sizes from these.
#[derive(Debug, Default)]
pub struct BatchCounters {
    pub claims: AtomicU64,
    pub claimed: AtomicU64,
    pub completes: AtomicU64,
    pub completed: AtomicU64,
}

pub static BATCHES: BatchCounters = BatchCounters {
    claims: AtomicU64::new(0),
    claimed: AtomicU64::new(0),
    completes: AtomicU64::new(0),
    completed: AtomicU64::new(0),
};

/// Heartbeat, rescue, prune, gauges.
async fn run_keeper(shared: Arc<Shared>, stop: CancellationToken) {
    let lease = shared.options.lease;
    let heartbeat_every = lease / 3;
    let mut heartbeat = tokio::time::interval(heartbeat_every);
    // Often enough that a dead worker's jobs are back within a lease plus a few seconds: a
    // `kill -9` is noticed after at most `lease` (its last heartbeat) + this interval.
    let mut rescue = tokio::time::interval(jittered(
        (lease / 6).clamp(Duration::from_millis(200), Duration::from_secs(5)),
    ));
    let mut gauges = tokio::time::interval(Duration::from_secs(5));
    let mut prune = tokio::time::interval(Duration::from_secs(600));
    for interval in [&mut heartbeat, &mut rescue, &mut gauges, &mut prune] {
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = heartbeat.tick() => {
                let ids: Vec<i64> = lock(&shared.running).iter().copied().collect();
                if let Err(e) = queue::heartbeat(&shared.pool, &shared.options.id, &ids, lease).await {
                    tracing::warn!(error = %e, "heartbeat failed");
                }
            }
            _ = rescue.tick() => match queue::rescue_expired_jobs(&shared.pool).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(jobs = n, "returned jobs whose worker stopped heartbeating");
                    shared.wake.notify_one();
                }
                Err(e) => tracing::warn!(error = %e, "rescue failed"),
            },
            _ = gauges.tick() => update_queue_gauges(&shared.pool).await,
            _ = prune.tick() => match queue::prune_finished_jobs(&shared.pool, shared.options.retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(jobs = n, "pruned finished jobs"),
                Err(e) => tracing::warn!(error = %e, "prune failed"),
            },
        }
    }
}

/// Sets the queue gauges from the jobs table, and the stale-orders and dead-stock gauges from
/// the sales store.
pub async fn update_queue_gauges(pool: &PgPool) {
    match queue::queue_stats(pool).await {
        Ok(stats) => {
            for count in stats.by_state {
                metrics::gauge!(m::QUEUE_JOBS, "status" => count.state.as_str())
                    .set(count.jobs as f64);
            }
            metrics::gauge!(m::QUEUE_OLDEST_AVAILABLE_AGE_SECONDS)
                .set(stats.oldest_available_age_seconds);
        }
        Err(e) => tracing::warn!(error = %e, "could not read queue statistics"),
    }
    match crate::sales::count_orders_pending_over_24h(pool).await {
        Ok(n) => metrics::gauge!(m::ORDERS_PENDING_OVER_24H).set(n as f64),
        Err(e) => tracing::warn!(error = %e, "could not count orders pending over 24 h"),
    }
    if dead_stock_count_due() {
        match crate::sales::count_dead_stock(pool).await {
            Ok(n) => metrics::gauge!(m::DEAD_STOCK_ITEMS).set(n as f64),
            Err(e) => tracing::warn!(error = %e, "could not count dead stock"),
        }
    }
}

/// The dead-stock count reads the whole valuation (about 65 ms of server CPU per 100,000 unsold
/// items) and moves by the day: once a minute is enough, not every 5 s. The gauge is
/// process-wide, so is the clock.
fn dead_stock_count_due() -> bool {
    static LAST: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    let mut last = LAST.lock().expect("lock");
    let now = Instant::now();
    let due = last.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(60));
    if due {
        *last = Some(now);
    }
    due
}

/// The LISTEN connection: connect, listen, wake the claimer, watch health, reconnect.
async fn run_listener(shared: Arc<Shared>, stop: CancellationToken) {
    let mut failures = 0u32;
    let mut first = true;
    while !stop.is_cancelled() {
        let mut listener = match connect_listener(&shared.pool).await {
            Ok(listener) => listener,
            Err(e) => {
                failures += 1;
                let wait = capped_backoff(failures);
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "LISTEN connection failed");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = stop.cancelled() => break,
                }
            }
        };
        if !first {
            metrics::counter!(m::LISTENER_RECONNECTS_TOTAL).increment(1);
            tracing::info!("LISTEN connection re-established");
        }
        first = false;
        failures = 0;
        shared.health.listener_up.store(true, Ordering::Relaxed);
        metrics::gauge!(m::LISTENER_UP).set(1.0);
        // Catch up on whatever was committed while we were not listening.
        shared.wake.notify_one();

        let lost = listen_until_lost(&shared, &mut listener, &stop).await;
        shared.health.listener_up.store(false, Ordering::Relaxed);
        metrics::gauge!(m::LISTENER_UP).set(0.0);
        match lost {
            Some(why) => {
                tracing::warn!(reason = %why, "LISTEN connection lost; reconnecting");
                failures += 1;
                tokio::select! {
                    _ = tokio::time::sleep(capped_backoff(failures - 1)) => {},
                    _ = stop.cancelled() => break,
                }
            }
            None => break,
        }
    }
}

async fn connect_listener(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // We reconnect ourselves, to count it and to catch up afterwards.
    listener.ignore_pool_close_event(true);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Returns why the connection was lost, or None on shutdown.
async fn listen_until_lost(
    shared: &Shared,
    listener: &mut PgListener,
    stop: &CancellationToken,
) -> Option<String> {
    const HEALTH_CHECK: Duration = Duration::from_secs(5);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return None,
            next = listener.try_recv() => match next {
                Ok(Some(_)) => shared.wake.notify_one(),
                Ok(None) => return Some("connection closed".into()),
                Err(e) => return Some(e.to_string()),
            },
            _ = tokio::time::sleep(HEALTH_CHECK) => {
                let channels: Result<Vec<String>, _> =
                    sqlx::query_scalar("SELECT pg_listening_channels()")
                        .fetch_all(&mut *listener)
                        .await;
                match channels {
                    Ok(c) if c.iter().any(|c| c == CHANNEL) => {}
                    Ok(_) => return Some("not listening on the channel".into()),
                    Err(e) => return Some(e.to_string()),
                }
            }
        }
    }
}

/// 100 ms doubling up to 10 s.
fn capped_backoff(failures: u32) -> Duration {
    let ms = 100u64.saturating_mul(1 << failures.min(7));
    Duration::from_millis(ms.min(10_000))
}

/// `base` plus up to 10 %, so that many workers do not poll in step.
fn jittered(base: Duration) -> Duration {
    let extra = rand::rng().random_range(0.0..=0.1);
    base.mul_f64(1.0 + extra)
}
