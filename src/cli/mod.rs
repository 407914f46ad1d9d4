//! The command line: one binary, one subcommand per verb, each in its own file here.
//!
//! Every command loads the settings, opens the database (embedded cluster or `DATABASE_URL`),
//! does its work and closes the database again, also on Ctrl-C. Exit codes: 0 success, 1 the work
//! ran but found failures, 2 bad usage or configuration.

pub mod backfill;
pub mod bench;
pub mod bench_market;
pub mod demo;
pub mod migrate;
pub mod report;
pub mod retry;
pub mod sandbox;
pub mod status;
pub mod sync_order;
pub mod verify;
pub mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, LogFormat, Settings};
use crate::db::{embedded::EmbeddedError, Database, DbError};
use crate::notion::backfill::BackfillError;

#[derive(Debug, Parser)]
#[command(
    name = "stockx-sync",
    version,
    about = "Enriches StockX sales in PostgreSQL from the StockX API and imports history from Notion"
)]
pub struct Cli {
    /// Settings file (default: ./stockx-sync.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Use this database instead of the configured one (same server; on the embedded cluster it
    /// is created when missing), e.g. `--db stockx_sync_demo`.
    #[arg(id = "db", long = "db", global = true, value_name = "NAME", value_parser = parse_database_name)]
    pub database: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the embedded database migrations: the database owner's step (idempotent).
    Migrate,
    /// Run the enrichment worker and its HTTP server (metrics, health) until SIGINT/SIGTERM.
    Worker {
        /// Never LISTEN; poll every second (for PgBouncer in transaction mode).
        #[arg(long)]
        poll_only: bool,
    },
    /// Enrich one order now, in the foreground, and print what changed and the warnings.
    SyncOrder {
        /// The StockX order number, e.g. 323314425-323214184.
        order_number: String,
        /// Look the SKU up again even when StockX did not know it before.
        #[arg(long)]
        force: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Put failed jobs back in the queue with their attempts reset: --all-failed, or the job IDs.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["all_failed", "job_ids"])))]
    Retry {
        /// Every failed job.
        #[arg(long, conflicts_with = "job_ids")]
        all_failed: bool,
        /// The failed jobs to retry (see `status`).
        #[arg(value_name = "JOB_ID")]
        job_ids: Vec<i64>,
    },
    /// Run a local StockX API sandbox (documented v2 formats, bundled catalog, optional faults).
    Sandbox {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9470")]
        addr: std::net::SocketAddr,
        /// Answer every N-th request with 429 and Retry-After.
        #[arg(long, value_name = "N")]
        throttle_every: Option<u64>,
        /// Answer every N-th request with 503.
        #[arg(long, value_name = "N")]
        fail_every: Option<u64>,
        /// Delay every answer by this many milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 0)]
        delay_ms: u64,
    },
    /// The whole flow on the embedded database and the local StockX sandbox, for a newcomer.
    Demo,
    /// Import historical sales (idempotent; the same write path as Budibase).
    Backfill {
        #[command(subcommand)]
        source: BackfillSource,
    },
    /// Show queue depth by state, the oldest waiting job, recent failures and warning counts.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Measure the queue (no-op jobs/s, insert → start latency) in a scratch database; prints figures.
    Bench {
        /// No-op jobs to burn down.
        #[arg(long, default_value_t = 20_000)]
        jobs: u64,
        /// Jobs run at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Single inserts timed for the latency figures.
        #[arg(long, default_value_t = 300)]
        latency_samples: usize,
        /// Rows of the generated Notion export for the import benchmark (0: skip it).
        #[arg(long, default_value_t = 10_000)]
        import_rows: usize,
        /// Only the import benchmark (skip the queue's).
        #[arg(long)]
        import_only: bool,
        /// `synchronous_commit` of the queue's claims and completions (off, local, on, ...,
        /// server); default: the setting `worker.queue_synchronous_commit` (off).
        #[arg(long, value_name = "MODE")]
        queue_commit: Option<crate::config::QueueCommit>,
        /// `synchronous_commit` of the latency benchmark's inserts; default `server`, as a
        /// Budibase insert commits.
        #[arg(long, value_name = "MODE", default_value = "server")]
        insert_commit: crate::config::QueueCommit,
        /// Instead: enrich a backlog of generated sales against the local StockX sandbox and
        /// print the StockX calls per sale by route, the wall time, and one new sale's latency.
        #[arg(long)]
        stockx: bool,
        /// Sales in the StockX benchmark's backlog.
        #[arg(long, default_value_t = 10_000)]
        sales: usize,
        /// Products the StockX benchmark's sales are spread over (1-10).
        #[arg(long, default_value_t = 6)]
        skus: usize,
        /// The StockX benchmark's client rate; default: the setting
        /// `stockx.requests_per_second` (1).
        #[arg(long, value_name = "RPS")]
        stockx_rps: Option<f64>,
        /// Measure the market instead: the refresh's StockX calls and the valuation views'
        /// query times (the sizes below).
        #[arg(long)]
        market: bool,
        /// Products the market benchmark's stock is spread over.
        #[arg(long, default_value_t = 100)]
        market_products: u32,
        /// Unsold items the market refresh is measured on.
        #[arg(long, default_value_t = 1_000)]
        market_items: u32,
        /// Unsold items the valuation views are measured on.
        #[arg(long, default_value_t = 100_000)]
        valuation_items: u32,
        /// Sold items (with enriched orders) beside them.
        #[arg(long, default_value_t = 2_000)]
        sold_items: u32,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The daily summary: sales recorded and enriched, warnings opened and resolved by rule,
    /// failures, the stock's value, dead stock and the largest market movers.
    Report {
        /// Start of the period (YYYY-MM-DD, from midnight UTC); default: the last 24 hours.
        #[arg(long, value_name = "DATE", value_parser = report::parse_date)]
        since: Option<time::Date>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run the integrity checks (orphaned sold inventory, profit/ROI mismatches, ...); exit 1 when any fails.
    Verify {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackfillSource {
    /// Import sales from Notion: an export file with --csv, else the Notion API.
    Notion(NotionArgs),
}

#[derive(Debug, clap::Args)]
pub struct NotionArgs {
    /// A Notion export: the .csv, or the "Markdown & CSV" .zip as Notion produces it.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// API only: read what changed since this date (2024-03-01) or RFC 3339 time.
    #[arg(long, value_name = "DATE", conflicts_with_all = ["csv", "full"], value_parser = backfill::parse_since)]
    pub since: Option<time::OffsetDateTime>,
    /// API only: read everything, ignoring the last run's watermark.
    #[arg(long, conflicts_with = "csv")]
    pub full: bool,
    /// Update the changed fields of sales already recorded (default: skip them).
    #[arg(long)]
    pub update: bool,
    /// Parse, map and validate everything; write nothing; print the same report.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Export only: the database to read when the export holds several (its title, the start
    /// of its title, or its ID).
    #[arg(long, value_name = "NAME", requires = "csv")]
    pub database: Option<String>,
}

/// A database name safe to put in `CREATE DATABASE` unquoted.
fn parse_database_name(name: &str) -> Result<String, String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    if first_ok
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        Ok(name.to_string())
    } else {
        Err("use lower-case letters, digits and _ (at most 63), starting with a letter".into())
    }
}

/// What went wrong, sorted by exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Backfill(#[from] BackfillError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CliError {
    /// Whether the command printed its report on stdout before failing (an interrupted
    /// backfill shows what it imported), so that `--json` output stays one document.
    pub fn report_printed(&self) -> bool {
        matches!(
            self,
            CliError::Backfill(BackfillError::Interrupted {
                report: Some(_),
                ..
            })
        )
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(if self.is_usage() { 2 } else { 1 })
    }

    /// Bad usage or configuration (exit 2) rather than a failure of the work (exit 1).
    fn is_usage(&self) -> bool {
        match self {
            CliError::Config(_) => true,
            CliError::Backfill(BackfillError::Input(_)) => true,
            CliError::Db(
                DbError::SchemaBehind { .. }
                | DbError::SchemaUnknown(_)
                | DbError::MigrateDenied(_)
                | DbError::Unreachable { .. }
                | DbError::Rejected { .. },
            ) => true,
            CliError::Db(DbError::Embedded(e)) => {
                !matches!(e, EmbeddedError::Command { .. } | EmbeddedError::Connect(_))
            }
            _ => false,
        }
    }
}

/// Whether the command line asks for JSON output, read from the raw arguments so that it also
/// holds when they cannot be parsed.
pub fn wants_json(args: &[std::ffi::OsString]) -> bool {
    args.iter().skip(1).any(|a| a == "--json")
}

/// An error as the JSON document a `--json` caller reads on stdout: what went wrong, its kind
/// (`usage`, `configuration`, `failure`) and the exit code.
pub fn error_json(message: &str, kind: &str, exit_code: u8) -> String {
    serde_json::json!({ "error": message, "kind": kind, "exit_code": exit_code }).to_string()
}

impl CliError {
    /// `configuration` for the errors that exit 2, `failure` for the rest.
    pub fn kind(&self) -> (&'static str, u8) {
        if self.is_usage() {
            ("configuration", 2)
        } else {
            ("failure", 1)
        }
    }
}

/// Sets up logging: text for people, JSON for log shippers; `RUST_LOG` refines the levels.
pub fn init_logging(format: LogFormat, default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

pub async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let settings = Settings::load(cli.config.as_deref())?;
    // Per-job log lines would measure the logger, not the queue.
    let quiet = matches!(cli.command, Command::Bench { .. } | Command::Demo);
    init_logging(
        settings.log.format,
        if quiet {
            "warn"
        } else {
            "info,sqlx=warn,hyper=warn,reqwest=warn"
        },
    );
    let stop = shutdown_signal();
    if let Command::Sandbox {
        addr,
        throttle_every,
        fail_every,
        delay_ms,
    } = &cli.command
    {
        // The sandbox needs no database.
        sandbox::run(*addr, *throttle_every, *fail_every, *delay_ms, stop).await?;
        return Ok(ExitCode::SUCCESS);
    }
    // The demo recreates its database, so it connects to the configured one and is told which
    // to use: `--db`, else the embedded cluster's own, else one beside DATABASE_URL's.
    let demo_target = match &cli.database {
        Some(name) => name.clone(),
        None if settings.database_url.is_some() => demo::DEMO_DB.to_string(),
        None => crate::db::embedded::DATABASE.to_string(),
    };
    let name = match cli.command {
        Command::Demo => None,
        _ => cli.database.as_deref(),
    };
    let database = Database::open_named(&settings, name, 10).await?;
    tracing::debug!(database = %database.location, "connected");
    let long_running = matches!(cli.command, Command::Worker { .. } | Command::Demo);
    let result = if long_running {
        run_command(&cli.command, &settings, &database, &demo_target, stop).await
    } else {
        tokio::select! {
            result = run_command(&cli.command, &settings, &database, &demo_target, stop.clone()) => result,
            _ = stop.cancelled() => {
                tracing::warn!("interrupted");
                Ok(ExitCode::from(130))
            }
        }
    };
    database.close().await;
    result
}

/// Cancelled on SIGINT (Ctrl-C) or SIGTERM.
fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        cancel.cancel();
    });
    token
}

async fn run_command(
    command: &Command,
    settings: &Settings,
    database: &Database,
    demo_target: &str,
    stop: CancellationToken,
) -> Result<ExitCode, CliError> {
    let pool = &database.pool;
    match command {
        Command::Sandbox { .. } => unreachable!("handled before the database is opened"),
        Command::Migrate => migrate::run(database).await,
        Command::Worker { poll_only } => {
            database.ensure_schema().await?;
            let mut settings = settings.clone();
            settings.worker.poll_only |= *poll_only;
            worker::run(&settings, pool, stop).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo => {
            let finished = demo::run(settings, database, demo_target, stop).await?;
            Ok(exit_code(finished))
        }
        Command::SyncOrder {
            order_number,
            force,
            json,
        } => {
            database.ensure_schema().await?;
            let report = sync_order::run(settings, pool, order_number, *force).await?;
            print_report(&report, *json);
            Ok(exit_code(report.ok))
        }
        Command::Backfill {
            source: BackfillSource::Notion(args),
        } => {
            database.ensure_schema().await?;
            let report = backfill::run(settings, pool, args).await?;
            print_report(&report, args.json);
            Ok(exit_code(report.failed == 0))
        }
        Command::Retry {
            all_failed,
            job_ids,
        } => {
            database.ensure_schema().await?;
            retry::run(pool, *all_failed, job_ids).await
        }
        Command::Status { json } => {
            database.ensure_schema().await?;
            let report = status::collect(pool).await.map_err(DbError::from)?;
            print_report(&report, *json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            jobs,
            concurrency,
            latency_samples,
            import_rows,
            import_only,
            queue_commit,
            insert_commit,
            stockx,
            sales,
            skus,
            stockx_rps,
            market,
            market_products,
            market_items,
            valuation_items,
            sold_items,
            json,
        } => {
            if *stockx && *market {
                return Err(anyhow::anyhow!(
                    "--stockx and --market are separate benchmarks: pick one"
                )
                .into());
            }
            if *stockx {
                if stockx_rps.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
                    return Err(anyhow::anyhow!(
                        "--stockx-rps must be a positive number of requests per second"
                    )
                    .into());
                }
                let options = bench::StockxBenchOptions {
                    sales: *sales,
                    skus: *skus,
                    requests_per_second: stockx_rps.unwrap_or(settings.stockx.requests_per_second),
                };
                bench::run_stockx(settings, database, &options, *json).await?;
                return Ok(ExitCode::SUCCESS);
            }
            if *market {
                let options = bench_market::MarketBenchOptions {
                    products: *market_products,
                    refresh_items: *market_items,
                    valuation_items: *valuation_items,
                    sold_items: *sold_items,
                };
                bench_market::run(database, options, *json).await?;
                return Ok(ExitCode::SUCCESS);
            }
            let options = bench::BenchOptions {
                jobs: *jobs,
                concurrency: *concurrency,
                latency_samples: *latency_samples,
                queue_commit: *queue_commit,
                insert_commit: *insert_commit,
            };
            bench::run(
                settings,
                database,
                &options,
                *import_rows,
                *import_only,
                *json,
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Report { since, json } => {
            database.ensure_schema().await?;
            let report = report::run(pool, *since).await.map_err(DbError::from)?;
            print_report(&report, *json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { json } => {
            database.ensure_schema().await?;
            let report = verify::run_checks(pool).await.map_err(DbError::from)?;
            print_report(&report, *json);
            Ok(exit_code(report.ok))
        }
    }
}

/// 0 when the work found nothing wrong, 1 otherwise.
fn exit_code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

pub(crate) fn print_report<T: serde::Serialize + std::fmt::Display>(report: &T, json: bool) {
    if json {
        match serde_json::to_string_pretty(report) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("cannot encode the report as JSON: {e}"),
        }
    } else {
        println!("{report}");
    }
}
