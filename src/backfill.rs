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
