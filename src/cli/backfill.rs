//! `stockx-sync backfill notion`: read the Notion sales (an export file, or the API), map each
//! record, and import them; with a progress bar on a terminal and log lines otherwise.

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::config::Settings;
use crate::notion::export::read_export;
use crate::notion::import::{import_records, ImportOptions, ImportReport, Record};
use crate::notion::mapping::{check_columns, map_row, Mapping, RecordSource};

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// Bad input as a whole (unreadable file, mapping that does not fit): exit 2.
    #[error("{0}")]
    Input(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// `backfill notion`: from the export file given with `--csv`, else from the Notion API.
pub async fn run(
    settings: &Settings,
    pool: &PgPool,
    args: &super::NotionArgs,
) -> Result<ImportReport, BackfillError> {
    let options = ImportOptions {
        dry_run: args.dry_run,
        update: args.update,
        ..Default::default()
    };
    match &args.csv {
        Some(csv) => backfill_csv(settings, pool, csv, &options).await,
        None => {
            let since = match (args.since, args.full) {
                (Some(t), _) => Since::From(t),
                (None, true) => Since::Full,
                (None, false) => Since::Watermark,
            };
            backfill_api(settings, pool, since, &options).await
        }
    }
}

/// The `[notion.mapping]` of the settings, over the design document's defaults.
pub fn mapping_from_settings(settings: &Settings) -> Result<Mapping, BackfillError> {
    match &settings.notion.mapping {
        None => Ok(Mapping::default()),
        Some(table) => toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e| BackfillError::Input(format!("invalid [notion.mapping]: {e}"))),
    }
}

/// Imports a Notion export (`.csv`, or the export `.zip`).
pub async fn backfill_csv(
    settings: &Settings,
    pool: &PgPool,
    path: &Path,
    options: &ImportOptions,
) -> Result<ImportReport, BackfillError> {
    let mapping = mapping_from_settings(settings)?;
    let owned = path.to_path_buf();
    let table = tokio::task::spawn_blocking(move || read_export(&owned))
        .await
        .map_err(|e| BackfillError::Input(e.to_string()))?
        .map_err(|e| BackfillError::Input(e.to_string()))?;
    check_columns(&mapping, &table.headers).map_err(|e| BackfillError::Input(e.to_string()))?;
    let records: Vec<(RecordSource, Record)> = table
        .rows
        .into_iter()
        .map(|(row_number, row)| {
            let origin = RecordSource::CsvRow { row: row_number };
            let record = row.and_then(|row| map_row(&mapping, &origin, &row));
            (origin, record)
        })
        .collect();
    let mut progress = Progress::new(records.len());
    let report = import_records(
        pool,
        &table.csv_name,
        records,
        options,
        &mut |done, total| progress.update(done, total),
    )
    .await?;
    progress.finish();
    Ok(report)
}

/// An indicatif bar on a terminal; a log line every few seconds otherwise.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_log: Instant,
}

impl Progress {
    pub fn new(total: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} records  {per_sec}  ETA {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        Progress {
            bar,
            last_log: Instant::now(),
        }
    }

    pub fn update(&mut self, done: usize, total: usize) {
        match &self.bar {
            Some(bar) => bar.set_position(done as u64),
            None if self.last_log.elapsed() >= Duration::from_secs(2) || done == total => {
                tracing::info!(done, total, "import progress");
                self.last_log = Instant::now();
            }
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
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
    From(time::OffsetDateTime),
}

/// A Notion API client from the settings.
pub fn notion_client(
    settings: &Settings,
) -> Result<crate::notion::client::NotionClient, BackfillError> {
    let token = settings.notion.token.clone().ok_or_else(|| {
        BackfillError::Input("NOTION_TOKEN is not set (the integration's secret)".into())
    })?;
    let database = settings.notion.database_id.clone().ok_or_else(|| {
        BackfillError::Input(
            "NOTION_DATABASE_ID is not set (the sales database's ID or URL)".into(),
        )
    })?;
    let mut config = crate::notion::client::NotionConfig::new(token, database);
    config.api_url = settings
        .notion
        .api_url
        .as_str()
        .trim_end_matches('/')
        .to_string();
    config.requests_per_second =
        std::num::NonZeroU32::new(settings.notion.requests_per_second.round().max(1.0) as u32)
            .unwrap_or(std::num::NonZeroU32::MIN);
    crate::notion::client::NotionClient::new(config, mapping_from_settings(settings)?)
        .map_err(|e| BackfillError::Input(e.to_string()))
}

/// Imports what the Notion API returns (everything, or what changed since `since`), and
/// records the new watermark.
pub async fn backfill_api(
    settings: &Settings,
    pool: &PgPool,
    since: Since,
    options: &ImportOptions,
) -> Result<ImportReport, BackfillError> {
    let client = notion_client(settings)?;
    let source_key = format!(
        "notion:{}",
        settings.notion.database_id.as_deref().unwrap_or_default()
    );
    let from = match since {
        Since::Full => None,
        Since::From(t) => Some(t),
        Since::Watermark => sqlx::query_scalar::<_, time::OffsetDateTime>(
            "SELECT watermark FROM integration.notion_sync_state WHERE source = $1",
        )
        .bind(&source_key)
        .fetch_optional(pool)
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
    let mut progress = Progress::new(records.len());
    let report = import_records(
        pool,
        "the Notion API",
        records,
        options,
        &mut |done, total| progress.update(done, total),
    )
    .await?;
    progress.finish();
    if let (Some(newest), false) = (newest, options.dry_run) {
        sqlx::query(
            "INSERT INTO integration.notion_sync_state (source, watermark) VALUES ($1, $2)
             ON CONFLICT (source) DO UPDATE
             SET watermark = greatest(notion_sync_state.watermark, EXCLUDED.watermark),
                 updated_at = now()",
        )
        .bind(&source_key)
        .bind(newest)
        .execute(pool)
        .await?;
    }
    Ok(report)
}

/// `--since`: a date (`2024-03-01`, midnight UTC) or an RFC 3339 instant.
pub fn parse_since(text: &str) -> Result<time::OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(t);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &format)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| {
            format!("--since {text:?}: expected a date like 2024-03-01 or an RFC 3339 time")
        })
}
