//! A whole Notion backfill run, from the settings to an [`ImportReport`]: read the sales (an
//! export file, or the API since a watermark), map each one, import them, and move the
//! watermark forward. The `backfill notion` command and the HTTP batch-sync endpoint both run
//! it; they differ only in how they show progress and report the result, so progress is a
//! callback here and nothing is printed.
//!
//! The watermark (`integration.notion_sync_state`, one row per data source, keyed by the ID
//! Notion resolved rather than by how `NOTION_DATABASE_ID` was written) is the newest
//! `last_edited_time` imported; an API read without an explicit start begins a few minutes
//! before it, because Notion rounds `last_edited_time` to the minute and the import is
//! idempotent, so re-reading a few minutes costs nothing. An API run imports as pages arrive
//! and moves the watermark after each batch, so an outage midway keeps what was read and the
//! next run continues from there.

use std::num::NonZeroU32;
use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use time::OffsetDateTime;

use super::client::{NotionClient, NotionConfig, NotionError, QueryTarget};
use super::export::read_export_database;
use super::import::{import_records, ImportOptions, ImportReport, Record};
use super::mapping::{absent_optional_columns, check_columns, map_row, Mapping, RecordSource};
use super::query::NotionRecord;
use super::values;
use crate::config::Settings;

/// Told `(done, total)` records as the import goes.
pub type ProgressFn<'a> = &'a mut (dyn FnMut(usize, usize) + Send);

/// Progress as a log line every few seconds and one at the end, for runs nobody watches on a
/// terminal (the worker's batch sync, a command whose output goes to a file).
#[derive(Debug)]
pub struct ProgressLog {
    last_log: Instant,
}

impl Default for ProgressLog {
    fn default() -> Self {
        Self {
            last_log: Instant::now(),
        }
    }
}

impl ProgressLog {
    pub fn update(&mut self, done: usize, total: usize) {
        if self.last_log.elapsed() >= Duration::from_secs(2) || done == total {
            tracing::info!(done, total, "import progress");
            self.last_log = Instant::now();
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// Bad input as a whole (unreadable file, mapping that does not fit, Notion settings or
    /// answers that stop the read): the person running it has to change something.
    #[error("{0}")]
    Input(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Notion failed midway (or before anything was read). What was read is imported and the
    /// watermark stays where it got to: running the backfill again continues from there.
    #[error("{}", describe_interruption(.reason, .report.as_deref(), .watermark))]
    Interrupted {
        reason: String,
        /// What was imported before the failure.
        report: Option<Box<ImportReport>>,
        /// The watermark recorded, when the run moved it.
        watermark: Option<OffsetDateTime>,
    },
}

fn describe_interruption(
    reason: &str,
    report: Option<&ImportReport>,
    watermark: &Option<OffsetDateTime>,
) -> String {
    let imported = report.map_or(0, |r| r.records);
    let resume = match watermark {
        Some(w) => {
            format!("the watermark is at {w}; run the backfill again to continue from there")
        }
        None => "the watermark did not move; run the backfill again".to_string(),
    };
    format!("the Notion read stopped: {reason}; the {imported} records read before were imported; {resume}")
}

/// The `[notion.mapping]` of the settings, over the default property names of the sales
/// database (see [`Mapping::default`]).
pub fn mapping_from_settings(settings: &Settings) -> Result<Mapping, BackfillError> {
    match &settings.notion.mapping {
        None => Ok(Mapping::default()),
        Some(table) => toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e| BackfillError::Input(format!("invalid [notion.mapping]: {e}"))),
    }
}

/// Imports a Notion export (`.csv`, or the export `.zip`) holding one database.
pub async fn backfill_csv(
    settings: &Settings,
    pool: &PgPool,
    path: &Path,
    options: &ImportOptions,
    progress: ProgressFn<'_>,
) -> Result<ImportReport, BackfillError> {
    backfill_csv_database(settings, pool, path, None, options, progress).await
}

/// Imports one database of a Notion export: the one named `database` (title, title prefix or
/// ID; see [`read_export_database`]), or the only one there is.
pub async fn backfill_csv_database(
    settings: &Settings,
    pool: &PgPool,
    path: &Path,
    database: Option<&str>,
    options: &ImportOptions,
    progress: ProgressFn<'_>,
) -> Result<ImportReport, BackfillError> {
    let mapping = mapping_from_settings(settings)?;
    let owned = path.to_path_buf();
    let wanted = database.map(str::to_string);
    let table =
        tokio::task::spawn_blocking(move || read_export_database(&owned, wanted.as_deref()))
            .await
            .map_err(|e| BackfillError::Input(e.to_string()))?
            .map_err(|e| BackfillError::Input(e.to_string()))?;
    check_columns(&mapping, &table.headers).map_err(|e| BackfillError::Input(e.to_string()))?;
    for (field, column) in absent_optional_columns(&mapping, &table.headers) {
        tracing::info!(
            field,
            column,
            "the export has no such column; the field stays empty"
        );
    }
    tracing::info!(database = %table.database, csv = %table.csv_name, rows = table.rows.len(), "read the export");
    let records: Vec<(RecordSource, Record)> = table
        .rows
        .into_iter()
        .map(|(row_number, row)| {
            let origin = RecordSource::CsvRow { row: row_number };
            let record = row.and_then(|row| map_row(&mapping, &origin, &row));
            (origin, record)
        })
        .collect();
    Ok(import_records(pool, &table.csv_name, records, options, progress).await?)
}

/// Overlap subtracted from the stored watermark: Notion rounds `last_edited_time` to the
/// minute, and idempotency makes re-reading a few minutes harmless.
pub const WATERMARK_OVERLAP: time::Duration = time::Duration::minutes(5);

/// Where an API read starts.
#[derive(Debug, Clone, Copy)]
pub enum Since {
    /// From the last run's watermark (minus the overlap), or everything on the first run.
    Watermark,
    /// Everything.
    Full,
    /// From this instant.
    From(OffsetDateTime),
}

/// A Notion API client from the settings.
pub fn notion_client(settings: &Settings) -> Result<NotionClient, BackfillError> {
    client_with(settings, notion_config(settings)?)
}

/// The Notion connection the settings describe, for a caller that adjusts it (the write-back
/// leaves retries to the job queue).
pub fn notion_config(settings: &Settings) -> Result<NotionConfig, BackfillError> {
    let token = settings.notion.token.clone().ok_or_else(|| {
        BackfillError::Input("NOTION_TOKEN is not set (the integration's secret)".into())
    })?;
    let database = settings.notion.database_id.clone().ok_or_else(|| {
        BackfillError::Input(
            "NOTION_DATABASE_ID is not set (the sales database's ID or URL)".into(),
        )
    })?;
    let mut config = NotionConfig::new(token, database);
    config.api_url = settings
        .notion
        .api_url
        .as_str()
        .trim_end_matches('/')
        .to_string();
    config.requests_per_second =
        NonZeroU32::new(settings.notion.requests_per_second.round().max(1.0) as u32)
            .unwrap_or(NonZeroU32::MIN);
    Ok(config)
}

/// A client over `config`, with the settings' `[notion.mapping]`.
pub fn client_with(
    settings: &Settings,
    config: NotionConfig,
) -> Result<NotionClient, BackfillError> {
    NotionClient::new(config, mapping_from_settings(settings)?)
        .map_err(|e| BackfillError::Input(e.to_string()))
}

/// The watermark's key: the data source (or legacy database) actually read, so that every
/// way of writing `NOTION_DATABASE_ID` (URL, dashed, undashed, the database's or the data
/// source's ID) shares one.
pub fn watermark_key(target: &QueryTarget) -> String {
    let (kind, id) = match target {
        QueryTarget::DataSource { id } => ("data_source", id),
        QueryTarget::LegacyDatabase { id } => ("database", id),
    };
    let id = values::extract_notion_id(id).unwrap_or_else(|| id.clone());
    format!("notion:{kind}:{id}")
}

/// Nothing the person running it must fix: the service was unreachable or failing. What was
/// read before is imported and the watermark kept, so the next run continues.
fn transient(e: &NotionError) -> bool {
    matches!(
        e,
        NotionError::Server { .. }
            | NotionError::Transport { .. }
            | NotionError::RateLimited { .. }
            | NotionError::Unexpected { .. }
            | NotionError::Decode { .. }
    )
}

/// Adds one batch's report to the run's.
fn merge(total: &mut Option<ImportReport>, part: ImportReport) {
    let Some(total) = total else {
        *total = Some(part);
        return;
    };
    total.records += part.records;
    total.created += part.created;
    total.updated += part.updated;
    total.skipped += part.skipped;
    total.skipped_other_platform += part.skipped_other_platform;
    total.failed += part.failed;
    total.with_warnings += part.with_warnings;
    total.duration_ms += part.duration_ms;
    let room = 20usize.saturating_sub(total.failures.len());
    total.failures.extend(part.failures.into_iter().take(room));
}

/// Imports what the Notion API returns (everything, or what changed since `since`) as it
/// arrives, a batch at a time, moving the watermark after each batch. Pages arrive in
/// `last_edited_time` order, so the watermark (the newest edit imported) never passes a page
/// not yet imported. When Notion fails midway, what was read is imported, the watermark stays
/// where it got to and [`BackfillError::Interrupted`] says so: the next run continues there.
pub async fn backfill_api(
    settings: &Settings,
    pool: &PgPool,
    since: Since,
    options: &ImportOptions,
    progress: ProgressFn<'_>,
) -> Result<ImportReport, BackfillError> {
    let client = notion_client(settings)?;
    let target = client.resolve_target().await.map_err(|e| {
        if transient(&e) {
            BackfillError::Interrupted {
                reason: e.to_string(),
                report: None,
                watermark: None,
            }
        } else {
            BackfillError::Input(e.to_string())
        }
    })?;
    let source_key = watermark_key(&target);
    let from = match since {
        Since::Full => None,
        Since::From(t) => Some(t),
        Since::Watermark => {
            let legacy_key = format!(
                "notion:{}",
                settings.notion.database_id.as_deref().unwrap_or_default()
            );
            let stored = match read_watermark(pool, &source_key).await? {
                Some(w) => Some(w),
                // Watermarks recorded before they were keyed by data source.
                None => read_watermark(pool, &legacy_key).await?,
            };
            stored.map(|w| w - WATERMARK_OVERLAP)
        }
    };
    tracing::info!(since = ?from, watermark = %source_key, "reading sales from the Notion API");
    let batch_size = options.batch_size.max(1);
    let mut query = client.query_sales(from);
    let mut report: Option<ImportReport> = None;
    let mut pending: Vec<NotionRecord> = Vec::new();
    let mut read = 0usize;
    let mut imported = 0usize;
    let mut watermark = None;
    let failure = loop {
        let (batch, failure, finished) = match query.next_batch().await {
            Ok(Some(batch)) => (batch, None, false),
            Ok(None) => (Vec::new(), None, true),
            Err(e) => (Vec::new(), Some(e), true),
        };
        read += batch.len();
        pending.extend(batch);
        if pending.len() >= batch_size || (finished && !pending.is_empty()) {
            let chunk = std::mem::take(&mut pending);
            let newest = chunk.iter().map(|p| p.last_edited_time).max();
            let records: Vec<(RecordSource, Record)> = chunk
                .into_iter()
                .map(|page| {
                    (
                        RecordSource::NotionPage {
                            page_id: page.page_id,
                            last_edited_time: page.last_edited_time,
                        },
                        page.result,
                    )
                })
                .collect();
            let count = records.len();
            let mut chunk_progress = |done: usize, _: usize| progress(imported + done, read);
            let part = import_records(
                pool,
                "the Notion API",
                records,
                options,
                &mut chunk_progress,
            )
            .await?;
            imported += count;
            merge(&mut report, part);
            if let (Some(newest), false) = (newest, options.dry_run) {
                advance_watermark(pool, &source_key, newest).await?;
                watermark = Some(newest);
            }
        }
        if finished {
            break failure;
        }
    };
    let stats = query.stats();
    tracing::info!(
        pages = read,
        requests = stats.requests,
        windows = stats.windows,
        results = stats.results,
        trashed = stats.trashed_skipped,
        "read from Notion"
    );
    let report = match report {
        Some(report) => report,
        // Nothing read: the empty report of an import of nothing.
        None => import_records(pool, "the Notion API", Vec::new(), options, progress).await?,
    };
    if let Some(e) = failure {
        return Err(BackfillError::Interrupted {
            reason: e.to_string(),
            report: Some(Box::new(report)),
            watermark,
        });
    }
    Ok(report)
}

async fn read_watermark(
    pool: &PgPool,
    source_key: &str,
) -> Result<Option<OffsetDateTime>, sqlx::Error> {
    sqlx::query_scalar("SELECT watermark FROM integration.notion_sync_state WHERE source = $1")
        .bind(source_key)
        .fetch_optional(pool)
        .await
}

/// Never moves backwards: a run started from an explicit earlier time keeps the newer mark.
async fn advance_watermark(
    pool: &PgPool,
    source_key: &str,
    newest: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO integration.notion_sync_state (source, watermark) VALUES ($1, $2)
         ON CONFLICT (source) DO UPDATE
         SET watermark = greatest(notion_sync_state.watermark, EXCLUDED.watermark),
             updated_at = now()",
    )
    .bind(source_key)
    .bind(newest)
    .execute(pool)
    .await?;
    Ok(())
}
