//! Writing mapped Notion records into PostgreSQL: the backfill's database half.
//!
//! Records go through `integration.import_sales` (migration 4) a batch at a time: the same
//! write path as Budibase (`platforms.stockx_sale_entry`), one subtransaction per record so a
//! bad one is rolled back alone, idempotent on the order number, one sync-log row per record.
//! The validation rules run here first (the same as the worker's); their findings go to the
//! sync log and never block a record. During a batch the triggers do not NOTIFY
//! (`stockx_sync.skip_notify`); one NOTIFY after the commit wakes the worker for all of it.

use std::collections::HashSet;
use std::time::Instant;

use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::mapping::{Mapped, RecordError, RecordSource, SaleRecord};
use crate::metrics as m;
use crate::validate::{self, SaleFacts};

/// How an import was started (the sync log's `trigger_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Manual,
    Scheduled,
    Webhook,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Scheduled => "scheduled",
            Trigger::Webhook => "webhook",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Parse, map, validate and compare with the database; write nothing.
    pub dry_run: bool,
    /// Update the changed fields of sales already recorded (default: skip them).
    pub update: bool,
    pub trigger: Trigger,
    /// The sync log's `synced_by`.
    pub synced_by: String,
    /// Records per database round trip.
    pub batch_size: usize,
    /// Identifies the run in the sync log.
    pub run_id: Uuid,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            dry_run: false,
            update: false,
            trigger: Trigger::Manual,
            synced_by: "stockx-sync".into(),
            batch_size: 500,
            run_id: Uuid::new_v4(),
        }
    }
}

/// One record to import: a sale, a row of another platform, or why it could not be read.
pub type Record = Result<Mapped, RecordError>;

/// A record that failed, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// "row 12" or "Notion page ...".
    pub source: String,
    pub order_number: Option<String>,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub run_id: Uuid,
    pub source: String,
    pub dry_run: bool,
    pub records: usize,
    pub created: usize,
    pub updated: usize,
    /// Sales already recorded (and unchanged, with `--update`).
    pub skipped: usize,
    /// Rows of other platforms, not imported.
    pub skipped_other_platform: usize,
    pub failed: usize,
    /// Imported or skipped records with validation findings.
    pub with_warnings: usize,
    /// The first 20 failures.
    pub failures: Vec<Failure>,
    pub duration_ms: u64,
}

const REPORTED_FAILURES: usize = 20;

impl ImportReport {
    fn new(source: String, dry_run: bool, run_id: Uuid) -> Self {
        ImportReport {
            run_id,
            source,
            dry_run,
            records: 0,
            created: 0,
            updated: 0,
            skipped: 0,
            skipped_other_platform: 0,
            failed: 0,
            with_warnings: 0,
            failures: Vec::new(),
            duration_ms: 0,
        }
    }

    fn fail(&mut self, source: String, order_number: Option<String>, reason: String) {
        self.failed += 1;
        if self.failures.len() < REPORTED_FAILURES {
            self.failures.push(Failure {
                source,
                order_number,
                reason,
            });
        }
    }
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let would = if self.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        };
        writeln!(f, "import of {}{would}", self.source)?;
        writeln!(f, "  records                 {}", self.records)?;
        writeln!(f, "  created                 {}", self.created)?;
        writeln!(f, "  updated                 {}", self.updated)?;
        writeln!(f, "  skipped (already there) {}", self.skipped)?;
        writeln!(
            f,
            "  skipped (other platform) {}",
            self.skipped_other_platform
        )?;
        writeln!(f, "  failed                  {}", self.failed)?;
        writeln!(f, "  with warnings           {}", self.with_warnings)?;
        for failure in &self.failures {
            writeln!(
                f,
                "  FAILED {}{}: {}",
                failure.source,
                failure
                    .order_number
                    .as_deref()
                    .map(|o| format!(" (order {o})"))
                    .unwrap_or_default(),
                failure.reason
            )?;
        }
        if self.failed > self.failures.len() {
            writeln!(
                f,
                "  ... and {} more failures (see integration.notion_sale_sync_log, run {})",
                self.failed - self.failures.len(),
                self.run_id
            )?;
        }
        write!(f, "  took {} ms (run {})", self.duration_ms, self.run_id)
    }
}

/// Imports `records` (in order); `progress` is told how many are done after each batch.
pub async fn import_records(
    pool: &PgPool,
    source: &str,
    records: Vec<(RecordSource, Record)>,
    options: &ImportOptions,
    progress: &mut (dyn FnMut(usize, usize) + Send),
) -> Result<ImportReport, sqlx::Error> {
    let started = Instant::now();
    let mut report = ImportReport::new(source.to_string(), options.dry_run, options.run_id);
    report.records = records.len();
    let total = records.len();
    let mut done = 0;
    // Order numbers seen in this run (a dry run cannot ask the database about them).
    let mut seen: HashSet<String> = HashSet::new();
    let mut wrote_any = false;
    for batch in records.chunks(options.batch_size.max(1)) {
        let mut sales: Vec<(&RecordSource, &SaleRecord, Vec<String>)> = Vec::new();
        let mut unreadable: Vec<(&RecordSource, &RecordError)> = Vec::new();
        for (origin, record) in batch {
            match record {
                Ok(Mapped::Sale(sale)) => {
                    let warnings: Vec<String> = validate::check_sale(&facts(sale))
                        .iter()
                        .map(|f| format!("{}: {}", f.rule.code(), f.message))
                        .collect();
                    sales.push((origin, sale, warnings));
                }
                Ok(Mapped::SkippedPlatform(_)) => {
                    report.skipped_other_platform += 1;
                    if !options.dry_run {
                        metrics::counter!(m::BACKFILL_ROWS_TOTAL, "outcome" => "skipped")
                            .increment(1);
                    }
                }
                Err(error) => unreadable.push((origin, error)),
            }
        }
        for (origin, error) in &unreadable {
            report.fail(origin.to_string(), None, error.to_string());
            if !options.dry_run {
                metrics::counter!(m::BACKFILL_ROWS_TOTAL, "outcome" => "failed").increment(1);
            }
        }
        report.with_warnings += sales.iter().filter(|(_, _, w)| !w.is_empty()).count();

        if options.dry_run {
            let numbers: Vec<String> = sales
                .iter()
                .map(|(_, s, _)| s.stockx_order_number.trim().to_string())
                .collect();
            let existing: HashSet<String> = crate::sales::recorded_order_numbers(pool, &numbers)
                .await?
                .into_iter()
                .collect();
            for number in numbers {
                if existing.contains(&number) || !seen.insert(number.clone()) {
                    if options.update {
                        report.updated += 1;
                    } else {
                        report.skipped += 1;
                    }
                } else {
                    report.created += 1;
                }
            }
        } else {
            let payload: Vec<serde_json::Value> = sales
                .iter()
                .map(|(origin, sale, warnings)| sale_json(origin, sale, warnings))
                .collect();
            let mut tx = pool.begin().await?;
            sqlx::query("SET LOCAL stockx_sync.skip_notify = 'on'")
                .execute(&mut *tx)
                .await?;
            let outcomes: Vec<(i32, String, Option<String>)> = sqlx::query_as(
                "SELECT idx, status, error FROM integration.import_sales($1, $2, $3, $4, $5)",
            )
            .bind(serde_json::Value::Array(payload))
            .bind(options.update)
            .bind(options.trigger.as_str())
            .bind(&options.synced_by)
            .bind(report.run_id)
            .fetch_all(&mut *tx)
            .await?;
            log_unreadable(&mut tx, &unreadable, options, report.run_id).await?;
            tx.commit().await?;
            for (idx, status, error) in outcomes {
                let (origin, sale, _) = &sales[(idx - 1) as usize];
                match status.as_str() {
                    "created" => report.created += 1,
                    "updated" => report.updated += 1,
                    "skipped" => report.skipped += 1,
                    _ => report.fail(
                        origin.to_string(),
                        Some(sale.stockx_order_number.clone()),
                        error.unwrap_or_else(|| "unknown error".into()),
                    ),
                }
                // The function's statuses are the metric's outcomes.
                metrics::counter!(m::BACKFILL_ROWS_TOTAL, "outcome" => status.clone()).increment(1);
                wrote_any |= status == "created" || status == "updated";
            }
        }
        done += batch.len();
        progress(done, total);
    }
    if wrote_any {
        // One wake-up for everything this run enqueued.
        sqlx::query("SELECT pg_notify('stockx_sync_jobs', 'order')")
            .execute(pool)
            .await?;
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

fn facts(sale: &SaleRecord) -> SaleFacts {
    SaleFacts {
        purchase_price: sale.purchase_price,
        purchase_date: sale.purchase_date,
        sale_price: sale.sale_price,
        net_proceeds: sale.net_proceeds,
        profit: sale.profit,
        roi: sale.roi,
        sold_at: sale.sold_at,
        delivered_at: sale.delivered_at,
    }
}

fn sale_json(origin: &RecordSource, sale: &SaleRecord, warnings: &[String]) -> serde_json::Value {
    let page_id = match origin {
        RecordSource::NotionPage { page_id, .. } => Some(page_id.clone()),
        RecordSource::CsvRow { .. } => None,
    };
    json!({
        "source": origin.to_string(),
        "notion_page_id": page_id,
        "stockx_order_number": sale.stockx_order_number,
        "sku": sale.sku,
        "size": sale.size,
        "size_region": sale.size_region,
        "supplier": sale.supplier,
        "purchase_price": sale.purchase_price.to_string(),
        "purchase_date": sale.purchase_date.map(|d| d.to_string()),
        "sale_price": sale.sale_price.map(|d| d.to_string()),
        "net_proceeds": sale.net_proceeds.to_string(),
        "profit": sale.profit.map(|d| d.to_string()),
        "roi": sale.roi.map(|d| d.to_string()),
        "sold_at": sale.sold_at.to_string(),
        "delivered_at": sale.delivered_at.map(|d| d.to_string()),
        "notes": sale.notes,
        "warnings": warnings,
    })
}

/// Sync-log rows for records that could not be read (no order number: the source stands in).
async fn log_unreadable(
    tx: &mut sqlx::PgConnection,
    unreadable: &[(&RecordSource, &RecordError)],
    options: &ImportOptions,
    run_id: Uuid,
) -> Result<(), sqlx::Error> {
    if unreadable.is_empty() {
        return Ok(());
    }
    let sources: Vec<String> = unreadable.iter().map(|(o, _)| o.to_string()).collect();
    let pages: Vec<Option<String>> = unreadable
        .iter()
        .map(|(o, _)| match o {
            RecordSource::NotionPage { page_id, .. } => Some(page_id.clone()),
            RecordSource::CsvRow { .. } => None,
        })
        .collect();
    let errors: Vec<String> = unreadable.iter().map(|(_, e)| e.to_string()).collect();
    sqlx::query(
        "INSERT INTO integration.notion_sale_sync_log
             (stockx_order_number, notion_page_id, sync_status, trigger_type, validation_warnings,
              error_message, sync_duration_ms, synced_by, run_id)
         SELECT left(s, 100), p, 'failed', $4, '{}', e, 0, $5, $6
         FROM unnest($1::text[], $2::text[], $3::text[]) AS u(s, p, e)",
    )
    .bind(&sources)
    .bind(&pages)
    .bind(&errors)
    .bind(options.trigger.as_str())
    .bind(&options.synced_by)
    .bind(run_id)
    .execute(tx)
    .await?;
    Ok(())
}
