//! Faults no input may turn into a wedged worker: handlers that panic, rows the claim or the
//! enricher cannot read, a claim that keeps failing, edits made while a row's job runs, repeated
//! dead letters of one row, a transaction held across a StockX call, and a `kill -9` with a
//! backlog queued. Real PostgreSQL, the real worker (and the real enricher against the StockX
//! sandbox where the data path matters), child processes for the crash.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use stockx_sync::app::{App, AppError};
use stockx_sync::config::Settings;
use stockx_sync::queue::{self, Job, JobHandler, JobResult, Worker, WorkerOptions};
use stockx_sync::sandbox::{self, Faults, SandboxOptions};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::{Sale, TestDb};
use crate::worker::options;

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn open_jobs(db: &TestDb) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM integration.enrichment_jobs
         WHERE state IN ('available', 'running', 'retryable')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

async fn job_state(db: &TestDb, id: i64) -> (String, i16, Option<String>, Option<String>) {
    sqlx::query_as(
        "SELECT state, attempt, outcome, last_error FROM integration.enrichment_jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

async fn insert_job(db: &TestDb, entity: Uuid) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO integration.enrichment_jobs (kind, entity_id) VALUES ('order', $1) RETURNING id",
    )
    .bind(entity)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

/// Panics on the jobs of `panic_on`; completes the others after `delay`.
struct Scripted {
    panic_on: HashSet<Uuid>,
    delay: Duration,
    runs: Mutex<Vec<i64>>,
}

impl Scripted {
    fn new(panic_on: &[Uuid], delay: Duration) -> Arc<Scripted> {
        Arc::new(Scripted {
            panic_on: panic_on.iter().copied().collect(),
            delay,
            runs: Mutex::new(Vec::new()),
        })
    }
}

impl JobHandler for Scripted {
    fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, JobResult> {
        Box::pin(async move {
            self.runs.lock().unwrap().push(job.id);
            tokio::time::sleep(self.delay).await;
            if self.panic_on.contains(&job.entity_id) {
                panic!("cannot read row {}", job.entity_id);
            }
            JobResult::Completed("enriched")
        })
    }
}

struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), sqlx::Error>>,
}

fn start(db: &TestDb, options: WorkerOptions, handler: Arc<dyn JobHandler>) -> Running {
    let worker = Worker::new(db.pool.clone(), options, handler);
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker.run(stop.clone()));
    Running { stop, task }
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_panicking_handler_fails_its_attempt_and_the_worker_keeps_going() {
    let db = TestDb::new().await;
    let bad = Uuid::new_v4();
    let bad_job = insert_job(&db, bad).await;
    let good: Vec<i64> = {
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(insert_job(&db, Uuid::new_v4()).await);
        }
        ids
    };
    let handler = Scripted::new(&[bad], Duration::ZERO);
    let worker = start(&db, options("panic"), handler.clone());
    wait_until(
        "the job that panicked failed",
        Duration::from_secs(10),
        || async { job_state(&db, bad_job).await.0 == "failed" },
    )
    .await;
    wait_until("the others completed", Duration::from_secs(10), || async {
        open_jobs(&db).await == 0
    })
    .await;
    // The worker still claims after the panic.
    let later = insert_job(&db, Uuid::new_v4()).await;
    wait_until("a later job completed", Duration::from_secs(10), || async {
        job_state(&db, later).await.0 == "completed"
    })
    .await;
    worker.stop().await;

    let (state, attempt, _, error) = job_state(&db, bad_job).await;
    assert_eq!(
        (state.as_str(), attempt),
        ("failed", 1),
        "failed for good, once"
    );
    let error = error.unwrap_or_default();
    assert!(
        error.contains("panicked") && error.contains(&format!("cannot read row {bad}")),
        "{error}"
    );
    for id in good {
        assert_eq!(job_state(&db, id).await.0, "completed");
    }
    // Stopping released nothing: the panicked job left the running set.
    assert_eq!(
        handler
            .runs
            .lock()
            .unwrap()
            .iter()
            .filter(|id| **id == bad_job)
            .count(),
        1
    );
}

/// A worker with the real enricher against the StockX sandbox.
struct Enriching {
    sandbox: sandbox::SandboxHandle,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), AppError>>,
}

async fn start_enriching(
    db: &TestDb,
    faults: Faults,
    adjust: impl FnOnce(&mut Settings),
) -> Enriching {
    let sandbox = sandbox::spawn(
        "127.0.0.1:0".parse().unwrap(),
        SandboxOptions {
            faults,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut settings = Settings::default();
    sandbox.configure(&mut settings, 100.0);
    settings.http.addr = "127.0.0.1:0".parse().unwrap();
    settings.worker.concurrency = 4;
    settings.worker.poll_interval_ms = 200;
    settings.worker.shutdown_grace_secs = 5;
    adjust(&mut settings);
    let app = App::build(&settings, db.pool.clone()).await.unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));
    Enriching {
        sandbox,
        stop,
        task,
    }
}

impl Enriching {
    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
        drop(self.sandbox);
    }
}

/// Sales whose rows hold what this program cannot read, put there behind the entry table's back.
const BAD_ROWS: &[(&str, &str, &str)] = &[
    ("BAD-INF", "UPDATE platforms.stockx_orders SET sold_at = 'infinity' WHERE stockx_order_number = $1", "sold_at"),
    ("BAD-12000", "UPDATE platforms.stockx_orders SET sold_at = '12000-01-01' WHERE stockx_order_number = $1", "sold_at"),
    ("BAD-NEGINF", "UPDATE products.inventory i SET purchase_date = '-infinity' FROM platforms.stockx_listings l
        JOIN platforms.stockx_orders o ON o.listing_id = l.id
        WHERE l.inventory_id = i.id AND o.stockx_order_number = $1", "purchase_date"),
    ("BAD-NAN", "UPDATE platforms.stockx_orders SET net_proceeds = 'NaN' WHERE stockx_order_number = $1", "net_proceeds"),
];

async fn enter_bad_rows(db: &TestDb) {
    for (order, corrupt, _) in BAD_ROWS {
        Sale::new(order).insert(&db.pool).await.unwrap();
        sqlx::query(corrupt)
            .bind(order)
            .execute(&db.pool)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn unreadable_rows_fail_at_once_mark_the_order_failed_and_are_not_queued_again() {
    let db = TestDb::new().await;
    enter_bad_rows(&db).await;
    Sale::new("323314425-323214184")
        .insert(&db.pool)
        .await
        .unwrap();
    let worker = start_enriching(&db, Faults::default(), |_| {}).await;
    wait_until("the queue is idle", Duration::from_secs(20), || async {
        open_jobs(&db).await == 0
    })
    .await;
    worker.stop().await;

    for (order, _, column) in BAD_ROWS {
        let (status, error): (String, Option<String>) = sqlx::query_as(
            "SELECT enrichment_status, enrichment_error FROM platforms.stockx_orders
             WHERE stockx_order_number = $1",
        )
        .bind(order)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        let error = error.unwrap_or_default();
        assert_eq!(status, "failed", "{order}: {error}");
        assert!(
            error.contains(column),
            "{order}: the reason names {column}: {error}"
        );
        let (state, attempt, error): (String, i16, Option<String>) = sqlx::query_as(
            "SELECT j.state, j.attempt, j.last_error FROM integration.enrichment_jobs j
             JOIN platforms.stockx_orders o ON o.id = j.entity_id
             WHERE j.kind = 'order' AND o.stockx_order_number = $1",
        )
        .bind(order)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(
            (state.as_str(), attempt),
            ("failed", 1),
            "{order}: {error:?}"
        );
    }
    let good: String = sqlx::query_scalar(
        "SELECT enrichment_status FROM platforms.stockx_orders
         WHERE stockx_order_number = '323314425-323214184'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(good, "enriched", "one bad row never stops the rest");
    // What a worker start queues again: none of them.
    let pending = stockx_sync::sales::pending_enrichment(&db.pool)
        .await
        .unwrap();
    assert!(pending.orders.is_empty(), "{pending:?}");
    assert_eq!(queue::enqueue_pending(&db.pool).await.unwrap(), 0);
}

#[tokio::test]
async fn sync_order_reports_an_unreadable_row_instead_of_panicking() {
    let db = TestDb::new().await;
    enter_bad_rows(&db).await;
    for (order, _, column) in BAD_ROWS {
        let out = crate::helpers::command()
            .args(["sync-order", order])
            .env("DATABASE_URL", db.url())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{order}: {stderr}");
        assert!(!out.status.success(), "{order}: {stdout}");
        assert!(
            stdout.contains("error") && stdout.contains(column),
            "{order}: {stdout}"
        );
    }
}

#[tokio::test]
async fn a_row_the_claim_cannot_take_is_dead_lettered_and_the_others_run() {
    let db = TestDb::new().await;
    let overflow: i64 = sqlx::query_scalar(
        "INSERT INTO integration.enrichment_jobs (kind, entity_id, attempt)
         VALUES ('order', gen_random_uuid(), 32767) RETURNING id",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let infinite: i64 = sqlx::query_scalar(
        "INSERT INTO integration.enrichment_jobs (kind, entity_id, created_at, run_after)
         VALUES ('order', gen_random_uuid(), 'infinity', now() - interval '1 hour') RETURNING id",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let mut good = Vec::new();
    for _ in 0..10 {
        good.push(insert_job(&db, Uuid::new_v4()).await);
    }
    let worker = start(&db, options("poison"), Scripted::new(&[], Duration::ZERO));
    wait_until("every job finished", Duration::from_secs(15), || async {
        open_jobs(&db).await == 0
    })
    .await;
    worker.stop().await;
    for id in good {
        assert_eq!(job_state(&db, id).await.0, "completed");
    }
    for (id, why) in [(overflow, "smallint out of range"), (infinite, "infinite")] {
        let (state, _, outcome, error) = job_state(&db, id).await;
        let error = error.unwrap_or_default();
        assert_eq!(state, "failed", "{error}");
        assert_eq!(outcome.as_deref(), Some("unclaimable"));
        assert!(error.contains(why), "{error}");
    }
}

#[tokio::test]
async fn readyz_reports_a_claimer_that_keeps_failing_and_recovers_with_it() {
    let db = TestDb::new().await;
    // Every claim fails (not on a row's data: on the table), as long as this trigger exists.
    sqlx::query(
        "CREATE FUNCTION integration.refuse_claims() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'claims refused for the test'; END $$",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_claims BEFORE UPDATE ON integration.enrichment_jobs
         FOR EACH ROW WHEN (NEW.state = 'running') EXECUTE FUNCTION integration.refuse_claims()",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let job = insert_job(&db, Uuid::new_v4()).await;
    let mut settings = Settings::default();
    settings.http.addr = "127.0.0.1:0".parse().unwrap();
    settings.worker.poll_interval_ms = 200;
    let app = App::build_with_handler(
        &settings,
        db.pool.clone(),
        Scripted::new(&[], Duration::ZERO),
    )
    .await
    .unwrap();
    let addr = app.http_addr();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));
    let readyz = || async {
        let response = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    };
    wait_until(
        "readyz reports the claimer",
        Duration::from_secs(15),
        || async {
            let (status, body) = readyz().await;
            status == 503
                && body.contains("claiming jobs failed")
                && body.contains("claims refused")
        },
    )
    .await;
    sqlx::query("DROP TRIGGER refuse_claims ON integration.enrichment_jobs")
        .execute(&db.pool)
        .await
        .unwrap();
    wait_until("the job ran", Duration::from_secs(20), || async {
        job_state(&db, job).await.0 == "completed"
    })
    .await;
    wait_until("readyz is 200 again", Duration::from_secs(5), || async {
        readyz().await.0 == 200
    })
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn two_jobs_of_one_row_never_run_at_once_and_a_returned_job_yields_to_the_newer() {
    let db = TestDb::new().await;
    let row = Uuid::new_v4();
    // Another worker runs the row's job; an edit queued a second one meanwhile.
    let first: i64 = sqlx::query_scalar(
        "INSERT INTO integration.enrichment_jobs
             (kind, entity_id, state, attempt, locked_by, locked_until, attempted_at)
         VALUES ('order', $1, 'running', 1, 'other-worker', now() + interval '1 hour', now())
         RETURNING id",
    )
    .bind(row)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let second = insert_job(&db, row).await;
    let other = insert_job(&db, Uuid::new_v4()).await;
    let handler = Scripted::new(&[], Duration::ZERO);
    let mut opts = options("one-per-row");
    opts.lease = Duration::from_secs(2);
    let worker = start(&db, opts, handler.clone());
    wait_until("another row's job ran", Duration::from_secs(10), || async {
        job_state(&db, other).await.0 == "completed"
    })
    .await;
    // A later job, claimed after the second one was due, runs; the second still waits.
    let later = insert_job(&db, Uuid::new_v4()).await;
    wait_until("a later job ran", Duration::from_secs(10), || async {
        job_state(&db, later).await.0 == "completed"
    })
    .await;
    assert_eq!(job_state(&db, second).await.0, "available");
    assert!(!handler.runs.lock().unwrap().contains(&second));

    // The other worker dies: its job goes back, finds a newer one of its row, and yields to it.
    sqlx::query(
        "UPDATE integration.enrichment_jobs SET locked_until = now() - interval '1 second'
         WHERE id = $1",
    )
    .bind(first)
    .execute(&db.pool)
    .await
    .unwrap();
    wait_until("the second job ran", Duration::from_secs(10), || async {
        job_state(&db, second).await.0 == "completed"
    })
    .await;
    worker.stop().await;
    let (state, _, outcome, _) = job_state(&db, first).await;
    assert_eq!(
        (state.as_str(), outcome.as_deref()),
        ("completed", Some("superseded"))
    );
    assert!(!handler.runs.lock().unwrap().contains(&first));
}

#[tokio::test]
async fn an_edit_made_while_the_rows_job_runs_is_checked_again() {
    let db = TestDb::new().await;
    let mut sale = Sale::new("323314425-323214184");
    sale.profit = Some("45.00"); // 160 - 110 = 50: a profit_mismatch
                                 // Each StockX answer takes a while, so that the edit lands while the job runs.
    let faults = Faults {
        delay: Duration::from_millis(1500),
        ..Faults::default()
    };
    let worker = start_enriching(&db, faults, |_| {}).await;
    sale.insert(&db.pool).await.unwrap();
    let order_job_running = || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM integration.enrichment_jobs WHERE kind = 'order' AND state = 'running'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        n == 1
    };
    wait_until(
        "the order's job runs",
        Duration::from_secs(10),
        order_job_running,
    )
    .await;
    sqlx::query(
        "UPDATE platforms.stockx_orders SET net_profit = 50.00
         WHERE stockx_order_number = '323314425-323214184'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    wait_until("the queue is idle", Duration::from_secs(30), || async {
        open_jobs(&db).await == 0
    })
    .await;
    worker.stop().await;

    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM integration.validation_warnings
         WHERE rule = 'profit_mismatch' AND resolved_at IS NULL",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(open, 0, "the corrected profit was checked again");
    let runs: Vec<(time::OffsetDateTime, time::OffsetDateTime)> = sqlx::query_as(
        "SELECT attempted_at, finished_at FROM integration.enrichment_jobs
         WHERE kind = 'order' ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(runs.len(), 2, "the edit queued a second job");
    assert!(
        runs[1].0 >= runs[0].1,
        "the second started after the first had finished: {runs:?}"
    );
}

#[tokio::test]
async fn retry_brings_back_one_job_per_row() {
    let db = TestDb::new().await;
    let row = Uuid::new_v4();
    let other = Uuid::new_v4();
    // Every worker start during a StockX outage left another dead letter for the same row.
    sqlx::query(
        "INSERT INTO integration.enrichment_jobs (kind, entity_id, state, attempt, finished_at, last_error)
         SELECT 'inventory', $1, 'failed', 3, now(), 'StockX answered 503' FROM generate_series(1, 3)
         UNION ALL SELECT 'inventory', $2, 'failed', 3, now(), 'StockX answered 503'",
    )
    .bind(row)
    .bind(other)
    .execute(&db.pool)
    .await
    .unwrap();
    let out = crate::helpers::command()
        .args(["retry", "--all-failed"])
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("2 failed job(s) back in the queue"),
        "{stdout}"
    );
    let per_row: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT entity_id, count(*) FROM integration.enrichment_jobs
         WHERE state = 'available' GROUP BY entity_id ORDER BY entity_id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(per_row.len(), 2);
    assert!(per_row.iter().all(|(_, n)| *n == 1), "{per_row:?}");
}

#[tokio::test]
async fn no_transaction_is_open_while_stockx_is_asked() {
    let db = TestDb::new().await;
    let faults = Faults {
        delay: Duration::from_millis(1500),
        ..Faults::default()
    };
    let worker = start_enriching(&db, faults, |_| {}).await;
    Sale::new("323314425-323214184")
        .insert(&db.pool)
        .await
        .unwrap();
    let mut samples = 0;
    let mut idle_in_transaction = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while open_jobs(&db).await > 0 {
        assert!(Instant::now() < deadline, "the jobs never finished");
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND state = 'idle in transaction'
               AND clock_timestamp() - state_change > interval '300 milliseconds'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        samples += 1;
        idle_in_transaction = idle_in_transaction.max(n);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.stop().await;
    assert!(samples > 10, "sampled while the StockX calls were slow");
    assert_eq!(
        idle_in_transaction, 0,
        "a connection sat idle in transaction while StockX was asked"
    );
}

/// Runs in a child process (see the crash test): a worker with the default lease whose jobs
/// never finish.
#[tokio::test]
#[ignore = "run as a child process by a_crashed_workers_jobs_jump_the_backlog"]
async fn child_worker_holding_its_jobs() {
    let Ok(url) = std::env::var("STOCKX_SYNC_CHILD_DB") else {
        return;
    };
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let mut opts = options("child");
    opts.lease = Duration::from_secs(Settings::default().worker.lease_secs);
    opts.id = "crashing-worker".into();
    let worker = Worker::new(pool, opts, Scripted::new(&[], Duration::from_secs(3600)));
    worker.run(CancellationToken::new()).await.unwrap();
}

/// Prints the recovery figure the README quotes: `kill -9` of a worker holding jobs, 1,000
/// jobs queued behind them, another worker busy with that backlog (8 at a time, 1 s each, so
/// the backlog lasts about two minutes); time from the kill until the dead worker's jobs are
/// completed. The deadline is generous; the figure is printed, not asserted.
#[tokio::test]
async fn a_crashed_workers_jobs_jump_the_backlog() {
    let db = TestDb::new().await;
    sqlx::query(
        "INSERT INTO integration.enrichment_jobs (kind, entity_id)
         SELECT 'order', gen_random_uuid() FROM generate_series(1, 1008)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "robustness::child_worker_holding_its_jobs",
            "--ignored",
            "--nocapture",
        ])
        .env("STOCKX_SYNC_CHILD_DB", db.url())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let held = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT id FROM integration.enrichment_jobs
             WHERE state = 'running' AND locked_by = 'crashing-worker' ORDER BY id",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap()
    };
    wait_until(
        "the child holds its jobs",
        Duration::from_secs(30),
        || async { held().await.len() == 8 },
    )
    .await;
    let dead_jobs = held().await;

    let lease = Duration::from_secs(Settings::default().worker.lease_secs);
    let mut opts = options("survivor");
    opts.lease = lease;
    opts.concurrency = 8;
    let survivor = start(&db, opts, Scripted::new(&[], Duration::from_secs(1)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    child.kill().unwrap(); // SIGKILL: no release, no last heartbeat
    let killed = Instant::now();
    child.wait().unwrap();
    let queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM integration.enrichment_jobs WHERE state = 'available'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(queued >= 900, "a backlog is queued: {queued}");

    wait_until(
        "the dead worker's jobs completed",
        Duration::from_secs(90),
        || async {
            let done: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM integration.enrichment_jobs
                 WHERE id = ANY($1) AND state = 'completed'",
            )
            .bind(&dead_jobs)
            .fetch_one(&db.pool)
            .await
            .unwrap();
            done == dead_jobs.len() as i64
        },
    )
    .await;
    let recovered = killed.elapsed();
    let still_queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM integration.enrichment_jobs WHERE state = 'available'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    println!(
        "crash recovery: kill -9 → the dead worker's {} jobs completed by another worker in {:.1} s \
         (lease {} s, {} jobs queued at the kill, {} still queued)",
        dead_jobs.len(),
        recovered.as_secs_f64(),
        lease.as_secs(),
        queued,
        still_queued
    );
    survivor.stop().await;
    assert!(
        still_queued > 0,
        "they jumped the backlog rather than waiting it out"
    );
}
