//! `stockx-sync backfill notion`: turns the arguments into a [`notion::backfill`] run and shows
//! its progress, as a bar on a terminal and as log lines otherwise. The run itself (reading,
//! mapping, importing, the watermark) is library logic in [`notion::backfill`], shared with the
//! HTTP batch-sync endpoint.
//!
//! [`notion::backfill`]: crate::notion::backfill

use std::io::IsTerminal;

use sqlx::PgPool;

use crate::config::Settings;
use crate::notion::backfill::{
    backfill_api, backfill_csv_database, BackfillError, ProgressLog, Since,
};
use crate::notion::import::{ImportOptions, ImportReport};

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
    let mut progress = Progress::new();
    let mut update = |done, total| progress.update(done, total);
    let report = match &args.csv {
        Some(csv) => {
            backfill_csv_database(
                settings,
                pool,
                csv,
                args.database.as_deref(),
                &options,
                &mut update,
            )
            .await
        }
        None => {
            let since = match (args.since, args.full) {
                (Some(t), _) => Since::From(t),
                (None, true) => Since::Full,
                (None, false) => Since::Watermark,
            };
            backfill_api(settings, pool, since, &options, &mut update).await
        }
    };
    progress.finish();
    // An interrupted API run still imported what it read: show that before the error.
    if let Err(BackfillError::Interrupted {
        report: Some(partial),
        ..
    }) = &report
    {
        super::print_report(partial.as_ref(), args.json);
    }
    report
}

/// An indicatif bar on a terminal; a log line every few seconds otherwise.
pub enum Progress {
    /// The bar is made at the first update, when the total is known.
    Bar(Option<indicatif::ProgressBar>),
    Log(ProgressLog),
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Progress {
        if std::io::stderr().is_terminal() {
            Progress::Bar(None)
        } else {
            Progress::Log(ProgressLog::default())
        }
    }

    /// `total` may grow: an API run learns it as pages arrive.
    pub fn update(&mut self, done: usize, total: usize) {
        match self {
            Progress::Bar(bar) => {
                let bar = bar.get_or_insert_with(|| new_bar(total));
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            }
            Progress::Log(log) => log.update(done, total),
        }
    }

    pub fn finish(&self) {
        if let Progress::Bar(Some(bar)) = self {
            bar.finish_and_clear();
        }
    }
}

fn new_bar(total: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} records  {per_sec}  ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
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
