//! `stockx-sync bench`: the queue's figures, measured the way `river bench` and graphile-worker's
//! latency test measure theirs, so that the numbers can be compared in one run.
//!
//! - **burn-down**: N no-op jobs inserted up front, one worker at the given concurrency; jobs/s
//!   from the first claim until the last completion is in the table.
//! - **latency**: single sales inserted through `platforms.stockx_sale_entry` (as Budibase does)
//!   into an idle worker; time from just before the INSERT is sent until the order's job starts
//!   (so it includes the insert, the trigger, the commit, NOTIFY and the claim).
//!
//! Runs in a scratch database created next to the configured one and dropped afterwards.

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

use crate::app::App;
use crate::config::Settings;
use crate::queue::{self, Job, JobHandler, JobKind, JobResult, JobState};
use crate::sales::{self, SaleEntry};

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub jobs: u64,
    pub concurrency: usize,
    pub latency_samples: usize,
}

#[derive(Debug, Serialize)]
pub struct QueueFigures {
    pub jobs: u64,
    pub concurrency: usize,
    pub seconds: f64,
    pub jobs_per_second: f64,
    pub latency_samples: usize,
    pub latency_ms_p50: f64,
    pub latency_ms_p90: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
    /// The same, measured from the moment the INSERT's commit was acknowledged.
    pub after_commit_ms_p50: f64,
    pub after_commit_ms_p99: f64,
}

impl std::fmt::Display for QueueFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "queue burn-down: {} no-op jobs, concurrency {}: {:.2} s, {:.0} jobs/s",
            self.jobs, self.concurrency, self.seconds, self.jobs_per_second
        )?;
        write!(
            f,
            "insert → job start latency ({} single sales through the entry view): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.latency_samples,
            self.latency_ms_p50,
            self.latency_ms_p90,
            self.latency_ms_p99,
            self.latency_ms_max
        )?;
        write!(
            f,
            "\ncommit acknowledged → job start: p50 {:.2} ms, p99 {:.2} ms",
            self.after_commit_ms_p50, self.after_commit_ms_p99
        )
    }
}

/// Does nothing but count, and report when an order job starts.
struct NoopHandler {
    done: AtomicU64,
    started_orders: mpsc::UnboundedSender<Instant>,
}

impl JobHandler for NoopHandler {
    fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, JobResult> {
        Box::pin(async move {
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
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .connect_with(crate::queue::queue_connect_options(
                base.clone().database(&name),
            ))
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
    json: bool,
) -> anyhow::Result<()> {
    let scratch = ScratchDb::create(&database.connect_options, "bench").await?;
    let figures = run_queue_bench(settings, &scratch.pool, options).await;
    scratch.drop_now().await?;
    super::print_report(&figures?, json);
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
        started_orders: tx,
    });
    let mut settings = settings.clone();
    settings.worker.concurrency = options.concurrency;
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
            pool,
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
    shutdown.cancel();
    worker_task.await??;

    latencies.sort_by(|a, b| a.total_cmp(b));
    after_commit.sort_by(|a, b| a.total_cmp(b));
    let pct_of = |samples: &[f64], p: f64| -> f64 {
        if samples.is_empty() {
            return 0.0;
        }
        samples[((samples.len() as f64 - 1.0) * p).round() as usize]
    };
    let pct = |p: f64| pct_of(&latencies, p);
    Ok(QueueFigures {
        jobs: options.jobs,
        concurrency: options.concurrency,
        seconds,
        jobs_per_second: options.jobs as f64 / seconds,
        latency_samples: latencies.len(),
        latency_ms_p50: pct(0.50),
        latency_ms_p90: pct(0.90),
        latency_ms_p99: pct(0.99),
        latency_ms_max: latencies.last().copied().unwrap_or(0.0),
        after_commit_ms_p50: pct_of(&after_commit, 0.50),
        after_commit_ms_p99: pct_of(&after_commit, 0.99),
    })
}

/// The Notion import's figures: a generated export of `rows` rows imported twice.
#[derive(Debug, Serialize)]
pub struct ImportFigures {
    pub rows: usize,
    pub first_run_seconds: f64,
    pub rows_per_second: f64,
    pub created: usize,
    pub skipped_other_platform: usize,
    pub failed: usize,
    pub second_run_seconds: f64,
    pub second_run_created: usize,
}

impl std::fmt::Display for ImportFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Notion export import: {} rows in {:.2} s ({:.0} rows/s; {} created, {} other platforms, {} failed); \
             again (idempotent): {:.2} s, {} created",
            self.rows,
            self.first_run_seconds,
            self.rows_per_second,
            self.created,
            self.skipped_other_platform,
            self.failed,
            self.second_run_seconds,
            self.second_run_created
        )
    }
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
    let (first, first_run_seconds) = timed_import(settings, pool, &file, &options).await?;
    let (second, second_run_seconds) = timed_import(settings, pool, &file, &options).await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ImportFigures {
        rows,
        first_run_seconds,
        rows_per_second: rows as f64 / first_run_seconds,
        created: first.created,
        skipped_other_platform: first.skipped_other_platform,
        failed: first.failed,
        second_run_seconds,
        second_run_created: second.created,
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
