//! The command line: one binary, one subcommand per job (contract §1).
//!
//! Every command loads the settings, opens the database (embedded cluster or `DATABASE_URL`),
//! does its work and closes the database again, also on Ctrl-C. Exit codes: 0 success, 1 the work
//! ran but found failures, 2 bad usage or configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{ConfigError, LogFormat, Settings};
use crate::db::{self, embedded::EmbeddedError, Database, DbError};

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
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the embedded database migrations (idempotent; safe at every start).
    Migrate,
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

/// What went wrong, sorted by exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        let usage = match self {
            CliError::Config(_) => true,
            CliError::Db(DbError::Embedded(e)) => {
                !matches!(e, EmbeddedError::Command { .. } | EmbeddedError::Connect(_))
            }
            _ => false,
        };
        ExitCode::from(if usage { 2 } else { 1 })
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
    let quiet = matches!(cli.command, Command::Bench { .. });
    init_logging(
        settings.log.format,
        if quiet {
            "warn"
        } else {
            "info,sqlx=warn,hyper=warn,reqwest=warn"
        },
    );
    let database = Database::open(&settings, 10).await?;
    tracing::debug!(database = %database.location, "connected");
    let result = tokio::select! {
        result = run_command(&cli.command, &settings, &database) => result,
        _ = tokio::signal::ctrl_c() => {
            tracing::warn!("interrupted");
            Ok(ExitCode::from(130))
        }
    };
    database.close().await;
    result
}

async fn run_command(
    command: &Command,
    _settings: &Settings,
    database: &Database,
) -> Result<ExitCode, CliError> {
    let pool = &database.pool;
    match command {
        Command::Migrate => {
            let applied = db::migrate(pool).await?;
            if applied.is_empty() {
                println!("database is up to date ({})", database.location);
            } else {
                for migration in &applied {
                    println!("applied {migration}");
                }
                println!(
                    "{} migration(s) applied to {}",
                    applied.len(),
                    database.location
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json } => {
            db::migrate(pool).await?;
            let report = crate::status::collect(pool).await.map_err(DbError::from)?;
            print_report(&report, *json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            jobs,
            concurrency,
            latency_samples,
            json,
        } => {
            let options = crate::bench::BenchOptions {
                jobs: *jobs,
                concurrency: *concurrency,
                latency_samples: *latency_samples,
            };
            let scratch =
                crate::bench::ScratchDb::create(&database.connect_options, "bench").await?;
            let figures = crate::bench::run_queue_bench(&scratch.pool, &options).await;
            scratch.drop_now().await?;
            print_report(&figures?, *json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { json } => {
            db::migrate(pool).await?;
            let report = crate::verify::run_checks(pool)
                .await
                .map_err(DbError::from)?;
            print_report(&report, *json);
            Ok(if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

fn print_report<T: serde::Serialize + std::fmt::Display>(report: &T, json: bool) {
    if json {
        match serde_json::to_string_pretty(report) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("cannot encode the report as JSON: {e}"),
        }
    } else {
        println!("{report}");
    }
}
