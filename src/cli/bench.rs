//! `stockx-sync bench`: the queue's figures, measured the way `river bench` and graphile-worker's
//! latency test measure theirs, so that the numbers can be compared in one run.
//!
//! - **burn-down**: N no-op jobs inserted up front, one worker at the given concurrency; jobs/s
//!   from the worker's start (its start-up, reported apart, is inside the time) until the last
//!   completion is committed.
//! - **latency**: single sales inserted through `platforms.stockx_sale_entry` (as Budibase does,
//!   committed as the server's `synchronous_commit` says, not as the queue's) into an idle
//!   worker; time from just before the INSERT is sent until the order's job starts (so it
//!   includes the insert, the trigger, the commit, NOTIFY and the claim), and from the commit's
//!   acknowledgement until the start.
//! - **import**: a generated Notion export imported twice (the second run finds everything).
//!
//! Every figure says how its commits were made: the queue's `synchronous_commit`
//! (`--queue-commit`, default the setting `worker.queue_synchronous_commit`) and the server's,
//! which the inserts and the import use. Runs in scratch databases created next to the
//! configured one and dropped afterwards.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::notion::import::DatabaseSplit;

use crate::app::App;
use crate::config::{QueueCommit, Settings};
use crate::queue::{self, Job, JobHandler, JobKind, JobResult, JobState};
use crate::sales::{self, SaleEntry};

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub jobs: u64,
    pub concurrency: usize,
    pub latency_samples: usize,
    /// The queue's `synchronous_commit`; `None`: `worker.queue_synchronous_commit`.
    pub queue_commit: Option<QueueCommit>,
    /// The latency inserts' `synchronous_commit`: `server` (as Budibase commits) unless a
    /// like-for-like comparison asks for another.
    pub insert_commit: QueueCommit,
}

#[derive(Debug, Serialize)]
pub struct QueueFigures {
    /// `synchronous_commit` of the queue's claims and completions.
    pub queue_synchronous_commit: String,
    /// `synchronous_commit` of the inserts (the server's default, as for Budibase).
    pub insert_synchronous_commit: String,
    pub jobs: u64,
    pub concurrency: usize,
    /// From the worker's start to the last completion committed, start-up included.
    pub seconds: f64,
    pub jobs_per_second: f64,
    /// From the worker's start until the first job started (inside `seconds`).
    pub startup_seconds: f64,
    /// Jobs per claim statement and per completion statement, on average.
    pub jobs_per_claim: f64,
    pub jobs_per_completion: f64,
    pub latency_samples: usize,
    pub latency_ms_p50: f64,
    pub latency_ms_p95: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
    /// The same, measured from the moment the INSERT's commit was acknowledged.
    pub after_commit_ms_p50: f64,
    pub after_commit_ms_p95: f64,
    pub after_commit_ms_p99: f64,
    /// A bare job (one INSERT and its NOTIFY in one statement, as graphile-worker's `add_job`)
    /// → start, insert committed as `insert_synchronous_commit`.
    pub job_insert_ms_p50: f64,
    pub job_insert_ms_p95: f64,
    pub job_insert_ms_p99: f64,
}

impl std::fmt::Display for QueueFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "queue burn-down: {} no-op jobs, concurrency {}, queue synchronous_commit={}: {:.2} s ({:.3} s of it start-up), {:.0} jobs/s; {:.1} jobs per claim, {:.1} per completion",
            self.jobs,
            self.concurrency,
            self.queue_synchronous_commit,
            self.seconds,
            self.startup_seconds,
            self.jobs_per_second,
            self.jobs_per_claim,
            self.jobs_per_completion
        )?;
        writeln!(
            f,
            "insert → job start ({} single sales through the entry table, insert synchronous_commit={}, queue synchronous_commit={}): p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.latency_samples,
            self.insert_synchronous_commit,
            self.queue_synchronous_commit,
            self.latency_ms_p50,
            self.latency_ms_p95,
            self.latency_ms_p99,
            self.latency_ms_max
        )?;
        writeln!(
            f,
            "commit acknowledged → job start: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
            self.after_commit_ms_p50, self.after_commit_ms_p95, self.after_commit_ms_p99
        )?;
        write!(
            f,
            "bare job insert → job start ({} single jobs, one statement each as graphile-worker's add_job, insert synchronous_commit={}): p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
            self.latency_samples,
            self.insert_synchronous_commit,
            self.job_insert_ms_p50,
            self.job_insert_ms_p95,
            self.job_insert_ms_p99
        )
    }
}

/// Does nothing but count, and report when an order job starts.
struct NoopHandler {
    done: AtomicU64,
    first_start: std::sync::OnceLock<Instant>,
    started_orders: mpsc::UnboundedSender<Instant>,
}

impl JobHandler for NoopHandler {
    fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, JobResult> {
        Box::pin(async move {
            let _ = self.first_start.set(Instant::now());
            if job.kind == JobKind::Order {
                let _ = self.started_orders.send(Instant::now());
            }
            self.done.fetch_add(1, Ordering::Relaxed);
            JobResult::Completed("enriched")
        })
    }
}

/// A scratch database beside `base`, migrated; dropped by [`ScratchDb::drop_now`].
pub struct ScratchDb {
    admin: PgConnectOptions,
    name: String,
    pub pool: PgPool,
}

impl ScratchDb {
    pub async fn create(base: &PgConnectOptions, purpose: &str) -> anyhow::Result<ScratchDb> {
        let name = format!("stockx_sync_{purpose}_{}", std::process::id());
        let admin = base.clone();
        let mut conn = admin.connect().await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .map_err(|e| anyhow::anyhow!("cannot create the scratch database {name} (the benchmark needs CREATE DATABASE): {e}"))?;
        conn.close().await?;
        // The server's own commit settings: the inserts and the import stand for Budibase's and
        // the importer's, which do not change them.
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .connect_with(base.clone().database(&name))
            .await?;
        crate::db::migrate(&pool).await?;
        Ok(ScratchDb { admin, name, pool })
    }

    pub async fn drop_now(self) -> anyhow::Result<()> {
        self.pool.close().await;
        let mut conn = self.admin.connect().await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn)
        .await?;
        conn.close().await?;
        Ok(())
    }
}

/// The queue benchmark, then (unless `import_rows` is 0) the import benchmark, each in a
/// scratch database of its own; prints the figures.
pub async fn run(
    settings: &Settings,
    database: &crate::db::Database,
    options: &BenchOptions,
    import_rows: usize,
    import_only: bool,
    json: bool,
) -> anyhow::Result<()> {
    if !import_only {
        let scratch = ScratchDb::create(&database.connect_options, "bench").await?;
        let figures = run_queue_bench(settings, &scratch.pool, options).await;
        scratch.drop_now().await?;
        super::print_report(&figures?, json);
    }
    if import_rows > 0 {
        let scratch = ScratchDb::create(&database.connect_options, "import").await?;
        let figures = run_import_bench(settings, &scratch.pool, import_rows).await;
        scratch.drop_now().await?;
        super::print_report(&figures?, json);
    }
    Ok(())
}

pub async fn run_queue_bench(
    settings: &Settings,
    pool: &PgPool,
    options: &BenchOptions,
) -> anyhow::Result<QueueFigures> {
    let (tx, mut started_orders) = mpsc::unbounded_channel();
    let handler = Arc::new(NoopHandler {
        done: AtomicU64::new(0),
        first_start: std::sync::OnceLock::new(),
        started_orders: tx,
    });
    let mut settings = settings.clone();
    settings.worker.concurrency = options.concurrency;
    if let Some(commit) = options.queue_commit {
        settings.worker.queue_synchronous_commit = commit;
    }
    let queue_commit = match settings.worker.queue_synchronous_commit {
        QueueCommit::Server => format!("{} (server)", server_synchronous_commit(pool).await?),
        commit => commit.to_string(),
    };
    let insert_commit = match options.insert_commit {
        QueueCommit::Server => format!("{} (server)", server_synchronous_commit(pool).await?),
        commit => commit.to_string(),
    };
    // One connection for the inserts, as a Budibase session has: no ping before each.
    let base = (*pool.connect_options()).clone();
    let insert_pool = PgPoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect_with(match options.insert_commit.setting() {
            Some(value) => base.options([("synchronous_commit", value)]),
            None => base,
        })
        .await?;
    settings.worker.poll_only = false;
    settings.worker.shutdown_grace_secs = 5;
    // The benchmark's worker serves HTTP like any other, on a free port.
    settings.http.addr.set_port(0);

    // Burn-down.
    queue::insert_placeholder_jobs(pool, JobKind::Inventory, options.jobs).await?;
    queue::vacuum_analyze(pool).await?;
    let shutdown = CancellationToken::new();
    let app = App::build_with_handler(&settings, pool.clone(), handler.clone()).await?;
    let unfinished: Vec<JobState> = JobState::ALL
        .into_iter()
        .filter(|s| *s != JobState::Completed)
        .collect();
    let before = batch_counts();
    let start = Instant::now();
    let worker_task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if handler.done.load(Ordering::Relaxed) < options.jobs {
            continue;
        }
        let left = queue::count_jobs(pool, &unfinished).await?;
        if left == 0 {
            break;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let startup_seconds = handler
        .first_start
        .get()
        .map(|t| t.saturating_duration_since(start).as_secs_f64())
        .unwrap_or(0.0);
    let after = batch_counts();
    let per = |jobs: u64, statements: u64| {
        if statements == 0 {
            0.0
        } else {
            jobs as f64 / statements as f64
        }
    };
    let jobs_per_claim = per(after.1 - before.1, after.0 - before.0);
    let jobs_per_completion = per(after.3 - before.3, after.2 - before.2);

    // Latency: one sale at a time into the idle worker.
    tokio::time::sleep(Duration::from_millis(200)).await;
    while started_orders.try_recv().is_ok() {}
    let mut latencies = Vec::with_capacity(options.latency_samples);
    let mut after_commit = Vec::with_capacity(options.latency_samples);
    let sale = SaleEntry {
        order_number: "",
        sku: "DD1391-100",
        size: "10",
        supplier: "Bench Supplier",
        purchase_price: Decimal::from(100),
        purchase_date: None,
        sale_price: None,
        net_proceeds: Decimal::from(130),
        profit: None,
        sold_at: time::macros::date!(2024 - 01 - 01),
    };
    for i in 0..options.latency_samples {
        let before = Instant::now();
        sales::enter_sale(
            &insert_pool,
            &SaleEntry {
                order_number: &format!("BENCH-{i}"),
                ..sale.clone()
            },
        )
        .await?;
        let committed = Instant::now();
        let started = tokio::time::timeout(Duration::from_secs(5), started_orders.recv())
            .await
            .map_err(|_| anyhow::anyhow!("no job started within 5 s of an insert"))?
            .ok_or_else(|| anyhow::anyhow!("worker stopped"))?;
        latencies.push(started.saturating_duration_since(before).as_secs_f64() * 1000.0);
        after_commit.push(started.saturating_duration_since(committed).as_secs_f64() * 1000.0);
        // Let the inventory job of the same sale finish too, so samples do not overlap.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The queue alone: a bare job per sample, as a graphile-worker user's `add_job` call.
    tokio::time::sleep(Duration::from_millis(50)).await;
    while started_orders.try_recv().is_ok() {}
    let mut job_inserts = Vec::with_capacity(options.latency_samples);
    for _ in 0..options.latency_samples {
        let before = Instant::now();
        queue::enqueue_jobs(
            &insert_pool,
            JobKind::Order,
            &[uuid::Uuid::new_v4()],
            Duration::ZERO,
        )
        .await?;
        let started = tokio::time::timeout(Duration::from_secs(5), started_orders.recv())
            .await
            .map_err(|_| anyhow::anyhow!("no job started within 5 s of an insert"))?
            .ok_or_else(|| anyhow::anyhow!("worker stopped"))?;
        job_inserts.push(started.saturating_duration_since(before).as_secs_f64() * 1000.0);
    }
    shutdown.cancel();
    worker_task.await??;
    insert_pool.close().await;

    latencies.sort_by(|a, b| a.total_cmp(b));
    after_commit.sort_by(|a, b| a.total_cmp(b));
    job_inserts.sort_by(|a, b| a.total_cmp(b));
    let pct_of = |samples: &[f64], p: f64| -> f64 {
        if samples.is_empty() {
            return 0.0;
        }
        samples[((samples.len() as f64 - 1.0) * p).round() as usize]
    };
    let pct = |p: f64| pct_of(&latencies, p);
    Ok(QueueFigures {
        queue_synchronous_commit: queue_commit,
        insert_synchronous_commit: insert_commit,
        jobs: options.jobs,
        concurrency: options.concurrency,
        seconds,
        jobs_per_second: options.jobs as f64 / seconds,
        startup_seconds,
        jobs_per_claim,
        jobs_per_completion,
        latency_samples: latencies.len(),
        latency_ms_p50: pct(0.50),
        latency_ms_p95: pct(0.95),
        latency_ms_p99: pct(0.99),
        latency_ms_max: latencies.last().copied().unwrap_or(0.0),
        after_commit_ms_p50: pct_of(&after_commit, 0.50),
        after_commit_ms_p95: pct_of(&after_commit, 0.95),
        after_commit_ms_p99: pct_of(&after_commit, 0.99),
        job_insert_ms_p50: pct_of(&job_inserts, 0.50),
        job_insert_ms_p95: pct_of(&job_inserts, 0.95),
        job_insert_ms_p99: pct_of(&job_inserts, 0.99),
    })
}

/// (claim statements, jobs claimed, completion statements, jobs completed) so far.
fn batch_counts() -> (u64, u64, u64, u64) {
    let b = &crate::queue::worker::BATCHES;
    (
        b.claims.load(Ordering::Relaxed),
        b.claimed.load(Ordering::Relaxed),
        b.completes.load(Ordering::Relaxed),
        b.completed.load(Ordering::Relaxed),
    )
}

/// The server's `synchronous_commit` as a new connection of `pool` sees it.
async fn server_synchronous_commit(pool: &PgPool) -> anyhow::Result<String> {
    Ok(
        sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
            .fetch_one(pool)
            .await?,
    )
}

/// The process's peak resident memory so far (Linux: `VmHWM`), in MB.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The Notion import's figures: a generated export of `rows` rows imported twice.
#[derive(Debug, Serialize)]
pub struct ImportFigures {
    /// `synchronous_commit` of the import's transactions (the server's).
    pub synchronous_commit: String,
    pub rows: usize,
    pub first_run_seconds: f64,
    /// Time spent waiting on the database during the first run.
    pub first_run_database_seconds: f64,
    /// Where the first run's database time went.
    pub first_run_split: DatabaseSplit,
    /// CPU time of the database server process that ran the first import (user + system),
    /// when the server runs on this machine: unlike the wall times, it hardly depends on what
    /// else the machine is doing.
    pub first_run_server_cpu_seconds: Option<f64>,
    pub rows_per_second: f64,
    pub created: usize,
    pub skipped_other_platform: usize,
    pub failed: usize,
    pub second_run_seconds: f64,
    pub second_run_database_seconds: f64,
    pub second_run_split: DatabaseSplit,
    pub second_run_server_cpu_seconds: Option<f64>,
    pub second_run_created: usize,
    /// The bench process's peak resident memory after the imports (it includes the queue
    /// benchmark's, which ran first).
    pub peak_rss_mb: Option<f64>,
}

impl std::fmt::Display for ImportFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Notion export import (synchronous_commit={}): {} rows in {:.2} s, {:.2} s of it in the database ({:.0} rows/s; {} created, {} other platforms, {} failed); \
             again (idempotent): {:.2} s ({:.2} s in the database), {} created; peak RSS {}\n  \
             database time, first run: {}; server CPU {}\n  \
             database time, again:     {}; server CPU {}",
            self.synchronous_commit,
            self.rows,
            self.first_run_seconds,
            self.first_run_database_seconds,
            self.rows_per_second,
            self.created,
            self.skipped_other_platform,
            self.failed,
            self.second_run_seconds,
            self.second_run_database_seconds,
            self.second_run_created,
            self.peak_rss_mb
                .map(|mb| format!("{mb:.0} MB"))
                .unwrap_or_else(|| "unknown".into()),
            split_line(&self.first_run_split),
            cpu(self.first_run_server_cpu_seconds),
            split_line(&self.second_run_split),
            cpu(self.second_run_server_cpu_seconds),
        )
    }
}

fn cpu(seconds: Option<f64>) -> String {
    seconds
        .map(|s| format!("{s:.2} s"))
        .unwrap_or_else(|| "unknown (server not on this machine)".into())
}

/// CPU time (user + system) of a process on this machine, from `/proc/PID/stat`; `None` when it
/// cannot be read (another machine, another OS). Linux reports it in USER_HZ, 100 a second.
pub(super) fn process_cpu_seconds(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// The database time of one import, by step.
fn split_line(split: &DatabaseSplit) -> String {
    format!(
        "lookup {} ms, COPY {} ms, set-based load {} ms, one at a time {} ms, sync log {} ms, transaction {} ms",
        split.lookup_ms,
        split.copy_ms,
        split.load_ms,
        split.one_by_one_ms,
        split.log_ms,
        split.transaction_ms
    )
}

pub async fn run_import_bench(
    settings: &crate::config::Settings,
    pool: &PgPool,
    rows: usize,
) -> anyhow::Result<ImportFigures> {
    let dir = std::env::temp_dir().join(format!("stockx-sync-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("Sales 0123456789abcdef0123456789abcdef_all.csv");
    crate::sandbox::notion_export::write_sample_export(&file, rows, 7)?;
    let options = crate::notion::import::ImportOptions::default();
    // One connection, so that the server process doing the import is known and its CPU time
    // can be read (when the server runs on this machine).
    let single = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(pool.connect_options().as_ref().clone())
        .await?;
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&single)
        .await?;
    let cpu_before = process_cpu_seconds(backend);
    let (first, first_run_seconds) = timed_import(settings, &single, &file, &options).await?;
    let cpu_between = process_cpu_seconds(backend);
    let (second, second_run_seconds) = timed_import(settings, &single, &file, &options).await?;
    let cpu_after = process_cpu_seconds(backend);
    single.close().await;
    let spent = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ImportFigures {
        synchronous_commit: format!("{} (server)", server_synchronous_commit(pool).await?),
        rows,
        first_run_seconds,
        first_run_database_seconds: first.database_ms as f64 / 1000.0,
        first_run_split: first.database_split.clone(),
        first_run_server_cpu_seconds: spent(cpu_before, cpu_between),
        rows_per_second: rows as f64 / first_run_seconds,
        created: first.created,
        skipped_other_platform: first.skipped_other_platform,
        failed: first.failed,
        second_run_seconds,
        second_run_database_seconds: second.database_ms as f64 / 1000.0,
        second_run_split: second.database_split.clone(),
        second_run_server_cpu_seconds: spent(cpu_between, cpu_after),
        second_run_created: second.created,
        peak_rss_mb: peak_rss_mb(),
    })
}

/// One import of the export, with the command's progress display, and its wall time in seconds.
async fn timed_import(
    settings: &crate::config::Settings,
    pool: &PgPool,
    file: &std::path::Path,
    options: &crate::notion::import::ImportOptions,
) -> anyhow::Result<(crate::notion::import::ImportReport, f64)> {
    let started = Instant::now();
    let mut progress = super::backfill::Progress::new();
    let report =
        crate::notion::backfill::backfill_csv(settings, pool, file, options, &mut |done, total| {
            progress.update(done, total)
        })
        .await;
    progress.finish();
    Ok((report?, started.elapsed().as_secs_f64()))
}

/// The StockX benchmark's knobs.
#[derive(Debug, Clone)]
pub struct StockxBenchOptions {
    /// Sales in the backlog.
    pub sales: usize,
    /// Products they are spread over.
    pub skus: usize,
    /// The client's rate (the setting `stockx.requests_per_second` unless given).
    pub requests_per_second: f64,
}

/// Calls of one route.
#[derive(Debug, Serialize)]
pub struct RouteCalls {
    pub route: String,
    pub calls: usize,
    pub per_sale: f64,
}

/// What enriching a backlog cost in StockX calls and time, and what one new sale costs after.
#[derive(Debug, Serialize)]
pub struct StockxFigures {
    pub sales: usize,
    pub skus: usize,
    pub requests_per_second: f64,
    pub bulk_orders_threshold: usize,
    pub concurrency: usize,
    /// Entering the backlog (one statement per 1,000 sales), before the worker starts.
    pub enter_seconds: f64,
    /// From the worker's start until no job is open.
    pub seconds: f64,
    pub calls: usize,
    pub calls_per_sale: f64,
    pub by_route: Vec<RouteCalls>,
    /// 429s the sandbox answered (it enforces no rate unless asked; the client's own pace).
    pub throttled: u64,
    pub orders: Vec<sales::EnrichmentCount>,
    /// One sale entered after the backlog: insert → its order enriched.
    pub single_sale_ms: f64,
    pub single_sale_order_calls: usize,
    pub single_sale_calls: usize,
    pub single_sale_routes: Vec<String>,
}

impl std::fmt::Display for StockxFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "StockX backlog: {} sales over {} products at {} request/s (bulk threshold {}, concurrency {}): enriched in {:.1} s with {} StockX calls ({:.4} per sale); entering them took {:.1} s",
            self.sales,
            self.skus,
            self.requests_per_second,
            self.bulk_orders_threshold,
            self.concurrency,
            self.seconds,
            self.calls,
            self.calls_per_sale,
            self.enter_seconds
        )?;
        for r in &self.by_route {
            writeln!(
                f,
                "  {:<45} {:>6} calls  {:.4} per sale",
                r.route, r.calls, r.per_sale
            )?;
        }
        let orders: Vec<String> = self
            .orders
            .iter()
            .map(|c| format!("{} {}", c.orders, c.status))
            .collect();
        writeln!(
            f,
            "  orders: {}; 429s answered: {}",
            orders.join(", "),
            self.throttled
        )?;
        write!(
            f,
            "single new sale afterwards: enriched {:.0} ms after its insert, {} order call(s), {} StockX call(s) in all ({})",
            self.single_sale_ms,
            self.single_sale_order_calls,
            self.single_sale_calls,
            self.single_sale_routes.join(", ")
        )
    }
}

/// `bench --stockx`: a backlog of generated sales (as after a Notion backfill) enriched by the
/// real worker against the sandbox at the given rate, in a scratch database; then one new sale.
pub async fn run_stockx(
    settings: &Settings,
    database: &crate::db::Database,
    options: &StockxBenchOptions,
    json: bool,
) -> anyhow::Result<()> {
    let scratch = ScratchDb::create(&database.connect_options, "stockx").await?;
    let figures = run_stockx_bench(settings, &scratch.pool, options).await;
    scratch.drop_now().await?;
    super::print_report(&figures?, json);
    Ok(())
}

pub async fn run_stockx_bench(
    settings: &Settings,
    pool: &PgPool,
    options: &StockxBenchOptions,
) -> anyhow::Result<StockxFigures> {
    use crate::sandbox;

    let sandbox = sandbox::spawn(
        "127.0.0.1:0".parse().expect("address"),
        sandbox::SandboxOptions::default(),
    )
    .await?;
    let mut settings = settings.clone();
    sandbox.configure(&mut settings, options.requests_per_second);
    settings.http.addr.set_port(0);
    settings.worker.shutdown_grace_secs = 5;
    let skus = options.skus.clamp(1, 10);
    let sold = sandbox::generated_sales(options.sales, skus, 730);
    sandbox.add_generated(&sold);

    let entering = Instant::now();
    for chunk in sold.chunks(1000) {
        let entries: Vec<SaleEntry<'_>> = chunk.iter().map(|s| s.entry()).collect();
        sales::enter_sales(pool, &entries).await?;
    }
    let enter_seconds = entering.elapsed().as_secs_f64();

    let unfinished: Vec<JobState> = JobState::ALL.into_iter().filter(|s| s.is_open()).collect();
    let shutdown = CancellationToken::new();
    let app = App::build(&settings, pool.clone()).await?;
    let start = Instant::now();
    let worker_task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let mut last_report = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let open = queue::count_jobs(pool, &unfinished).await?;
        if open == 0 {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(15) {
            last_report = Instant::now();
            eprintln!(
                "  {:.0} s: {open} jobs open, {} StockX calls so far",
                start.elapsed().as_secs_f64(),
                sandbox.api_request_count()
            );
        }
        if worker_task.is_finished() {
            anyhow::bail!("the worker stopped before the backlog was enriched");
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let calls = sandbox.api_request_count();
    let per_sale = |n: usize| n as f64 / options.sales.max(1) as f64;
    let by_route = sandbox
        .request_counts()
        .into_iter()
        .map(|(route, calls)| RouteCalls {
            per_sale: per_sale(calls),
            route,
            calls,
        })
        .collect();
    let orders = sales::count_orders_by_enrichment(pool).await?;

    // One new sale, sold today, into the idle worker: the path a Budibase insert takes. After
    // the second for which the enricher trusts its count of a backlog.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut new_sale = sandbox::generated_sales(options.sales + 1, skus, 1)
        .pop()
        .expect("one sale");
    new_sale.sold_at = time::OffsetDateTime::now_utc().date();
    sandbox.add_generated(std::slice::from_ref(&new_sale));
    let calls_before = sandbox.api_request_count();
    let routes_before = sandbox.request_counts();
    let inserted = Instant::now();
    sales::enter_sale(pool, &new_sale.entry()).await?;
    loop {
        let status = sales::order_enrichment_status(pool, &new_sale.order_number).await?;
        if status.as_deref().is_some_and(|s| s != "pending") {
            break;
        }
        if inserted.elapsed() > Duration::from_secs(30) {
            anyhow::bail!("the new sale was not enriched within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let single_sale_ms = inserted.elapsed().as_secs_f64() * 1000.0;
    // Its inventory job may still be running: let the queue empty before counting.
    while queue::count_jobs(pool, &unfinished).await? > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let single_sale_calls = sandbox.api_request_count() - calls_before;
    let single_sale_order_calls = sandbox.order_lookups(&new_sale.order_number);
    let single_sale_routes: Vec<String> = sandbox
        .request_counts()
        .into_iter()
        .filter_map(|(route, calls)| {
            let before = routes_before
                .iter()
                .find(|(r, _)| *r == route)
                .map_or(0, |(_, n)| *n);
            (calls > before).then(|| format!("{route} ×{}", calls - before))
        })
        .collect();
    shutdown.cancel();
    worker_task.await??;

    Ok(StockxFigures {
        sales: options.sales,
        skus,
        requests_per_second: options.requests_per_second,
        bulk_orders_threshold: settings.stockx.bulk_orders_threshold,
        concurrency: settings.worker.concurrency,
        enter_seconds,
        seconds,
        calls,
        calls_per_sale: per_sale(calls),
        by_route,
        throttled: sandbox.throttled_count(),
        orders,
        single_sale_ms,
        single_sale_order_calls,
        single_sale_calls,
        single_sale_routes,
    })
}
