//! A whole Notion backfill run, from the settings to an [`ImportReport`]: read the sales (an
//! export file, or the API since a watermark), map each one, import them, and move the
//! watermark forward. The `backfill notion` command and the HTTP batch-sync endpoint both run
//! it; they differ only in how they show progress and report the result, so progress is a
//! callback here and nothing is printed.
//!
//! The watermark (`integration.notion_sync_state`, one row per database) is the newest
//! `last_edited_time` imported; an API read without an explicit start begins a few minutes
//! before it, because Notion rounds `last_edited_time` to the minute and the import is
//! idempotent, so re-reading a few minutes costs nothing.

use std::num::NonZeroU32;
use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use time::OffsetDateTime;

use super::client::{NotionClient, NotionConfig};
use super::export::read_export_database;
use super::import::{import_records, ImportOptions, ImportReport, Record};
use super::mapping::{absent_optional_columns, check_columns, map_row, Mapping, RecordSource};
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
    NotionClient::new(config, mapping_from_settings(settings)?)
        .map_err(|e| BackfillError::Input(e.to_string()))
}

/// Imports what the Notion API returns (everything, or what changed since `since`), and
/// records the new watermark.
pub async fn backfill_api(
    settings: &Settings,
    pool: &PgPool,
    since: Since,
    options: &ImportOptions,
    progress: ProgressFn<'_>,
) -> Result<ImportReport, BackfillError> {
    let client = notion_client(settings)?;
    let source_key = format!(
        "notion:{}",
        settings.notion.database_id.as_deref().unwrap_or_default()
    );
    let from = match since {
        Since::Full => None,
        Since::From(t) => Some(t),
        Since::Watermark => read_watermark(pool, &source_key)
            .await?
            .map(|w| w - WATERMARK_OVERLAP),
    };
    tracing::info!(since = ?from, "reading sales from the Notion API");
    let (pages, stats) = client
        .query_sales(from)
        .collect_all()
        .await
        .map_err(|e| BackfillError::Input(e.to_string()))?;
    tracing::info!(
        pages = pages.len(),
        requests = stats.requests,
        windows = stats.windows,
        trashed = stats.trashed_skipped,
        "read from Notion"
    );
    let newest = pages.iter().map(|p| p.last_edited_time).max();
    let records: Vec<(RecordSource, Record)> = pages
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
    let report = import_records(pool, "the Notion API", records, options, progress).await?;
    if let (Some(newest), false) = (newest, options.dry_run) {
        advance_watermark(pool, &source_key, newest).await?;
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
