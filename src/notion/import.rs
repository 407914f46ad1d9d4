//! Writing mapped Notion records into PostgreSQL: the backfill's database half.
//!
//! Records are checked here first (the validation rules, the same as the worker's, whose
//! findings go to the sync log and never block a record; and the entry table's own rules, see
//! [`plain_sale`]). A batch is one transaction:
//!
//! 1. without `--update`, sales already recorded are found with one query and only logged as
//!    skipped (a re-run touches nothing else);
//! 2. the other sales the checks pass are COPYed into the session's load table and written
//!    set-based by `integration.import_sales_staged` (migration 41): one statement per table;
//! 3. what that load hands back (and repeats of an order number, and values the entry table
//!    would refuse or rewrite) goes through `integration.import_sales` (migration 4) one record
//!    at a time, each in its own subtransaction, so a bad one fails alone with its own error;
//! 4. unreadable records and other platforms' rows get their sync-log rows.
//!
//! Idempotent on the order number, one sync-log row per record. During a batch the triggers do
//! not NOTIFY (`stockx_sync.skip_notify`); one NOTIFY after the commit wakes the worker for all
//! of it.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use time::Date;
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
    /// Records per transaction (and per COPY).
    pub batch_size: usize,
    /// Identifies the run in the sync log.
    pub run_id: Uuid,
    /// Load the records that pass the checks set-based (the default). `false` imports every
    /// record one at a time: the reference the set-based load is tested against, and a way
    /// round it should it ever misbehave.
    pub set_based: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            dry_run: false,
            update: false,
            trigger: Trigger::Manual,
            synced_by: "stockx-sync".into(),
            // One COPY and one set-based load for a typical history; memory stays well under
            // 100 MB at this size.
            batch_size: 10_000,
            run_id: Uuid::new_v4(),
            set_based: true,
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
    /// Of `duration_ms`, the time spent waiting on the database.
    pub database_ms: u64,
    /// Where `database_ms` went.
    pub database_split: DatabaseSplit,
}

/// Where an import's database time went, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DatabaseSplit {
    /// Finding the sales already recorded (without `--update`).
    pub lookup_ms: u64,
    /// Opening the load table and COPYing the records into it.
    pub copy_ms: u64,
    /// The set-based load (`integration.import_sales_staged`).
    pub load_ms: u64,
    /// Records imported one at a time (`integration.import_sales`).
    pub one_by_one_ms: u64,
    /// Sync-log rows written apart from the load: sales already recorded, unreadable records,
    /// other platforms' rows.
    pub log_ms: u64,
    /// BEGIN, SET, savepoints, COMMIT, and the NOTIFY after the run.
    pub transaction_ms: u64,
    /// Dry runs: comparing with the database.
    pub dry_run_ms: u64,
}

/// [`DatabaseSplit`] while it is measured.
#[derive(Debug, Default)]
struct Timings {
    lookup: Duration,
    copy: Duration,
    load: Duration,
    one_by_one: Duration,
    log: Duration,
    transaction: Duration,
    dry_run: Duration,
}

impl Timings {
    fn total(&self) -> Duration {
        self.lookup
            + self.copy
            + self.load
            + self.one_by_one
            + self.log
            + self.transaction
            + self.dry_run
    }

    fn split(&self) -> DatabaseSplit {
        let ms = |d: Duration| d.as_millis() as u64;
        DatabaseSplit {
            lookup_ms: ms(self.lookup),
            copy_ms: ms(self.copy),
            load_ms: ms(self.load),
            one_by_one_ms: ms(self.one_by_one),
            log_ms: ms(self.log),
            transaction_ms: ms(self.transaction),
            dry_run_ms: ms(self.dry_run),
        }
    }
}

/// Runs `step`, adding its time to `slot`.
async fn timed<T>(slot: &mut Duration, step: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let out = step.await;
    *slot += started.elapsed();
    out
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
            database_ms: 0,
            database_split: DatabaseSplit::default(),
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
    let mut timings = Timings::default();
    for batch in records.chunks(options.batch_size.max(1)) {
        let mut sales: Vec<Pending> = Vec::new();
        let mut unwritten: Vec<Unwritten> = Vec::new();
        for (origin, record) in batch {
            match record {
                Ok(Mapped::Sale(sale)) => {
                    let warnings: Vec<String> = validate::check_sale(&facts(sale))
                        .iter()
                        .map(|f| format!("{}: {}", f.rule.code(), f.message))
                        .collect();
                    sales.push(Pending {
                        origin,
                        sale,
                        warnings,
                    });
                }
                Ok(Mapped::SkippedPlatform(platform)) => {
                    report.skipped_other_platform += 1;
                    if !options.dry_run {
                        metrics::counter!(m::BACKFILL_ROWS_TOTAL, "outcome" => "skipped")
                            .increment(1);
                    }
                    unwritten.push(Unwritten {
                        origin,
                        order_number: None,
                        status: "skipped",
                        message: if platform.is_empty() {
                            "not a StockX sale (the platform is empty)".to_string()
                        } else {
                            format!("not a StockX sale (platform {platform:?})")
                        },
                    });
                }
                Err(error) => {
                    let order_number = error.order_number.as_deref().cloned();
                    report.fail(origin.to_string(), order_number.clone(), error.to_string());
                    if !options.dry_run {
                        metrics::counter!(m::BACKFILL_ROWS_TOTAL, "outcome" => "failed")
                            .increment(1);
                    }
                    unwritten.push(Unwritten {
                        origin,
                        order_number,
                        status: "failed",
                        message: error.to_string(),
                    });
                }
            }
        }
        report.with_warnings += sales.iter().filter(|p| !p.warnings.is_empty()).count();

        if options.dry_run {
            let waited = Instant::now();
            let numbers: Vec<String> = sales
                .iter()
                .map(|p| p.sale.stockx_order_number.trim().to_string())
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
            timings.dry_run += waited.elapsed();
        } else {
            let outcomes = write_batch(
                pool,
                &sales,
                &unwritten,
                options,
                report.run_id,
                &mut timings,
            )
            .await?;
            for (i, outcome) in outcomes.into_iter().enumerate() {
                let Pending { origin, sale, .. } = &sales[i];
                match outcome.status.as_str() {
                    "created" => report.created += 1,
                    "updated" => report.updated += 1,
                    "skipped" => report.skipped += 1,
                    _ => report.fail(
                        origin.to_string(),
                        Some(sale.stockx_order_number.clone()),
                        outcome.error.unwrap_or_else(|| "unknown error".into()),
                    ),
                }
                // The statuses are the metric's outcomes.
                metrics::counter!(m::BACKFILL_ROWS_TOTAL, "outcome" => outcome.status.clone())
                    .increment(1);
                wrote_any |= outcome.status == "created" || outcome.status == "updated";
            }
        }
        done += batch.len();
        progress(done, total);
    }
    if wrote_any {
        // One wake-up for everything this run enqueued.
        timed(
            &mut timings.transaction,
            sqlx::query("SELECT pg_notify('stockx_sync_jobs', 'order')").execute(pool),
        )
        .await?;
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    report.database_ms = timings.total().as_millis() as u64;
    report.database_split = timings.split();
    Ok(report)
}

/// A sale to write, with its validation findings.
struct Pending<'a> {
    origin: &'a RecordSource,
    sale: &'a SaleRecord,
    warnings: Vec<String>,
}

/// A record that is not written but gets its sync-log row: unreadable, or another platform's.
struct Unwritten<'a> {
    origin: &'a RecordSource,
    order_number: Option<String>,
    status: &'static str,
    message: String,
}

/// What became of one sale.
#[derive(Debug)]
struct Outcome {
    status: String,
    error: Option<String>,
}

/// Writes one batch in one transaction: the sales already recorded logged as skipped (without
/// `--update`), the other sales the checks pass COPYed and loaded set-based, then one at a time
/// the ones the load hands back (and, should the load fail as a whole, all of them), then the
/// sync-log rows of the records not written. Returns one outcome per sale.
async fn write_batch(
    pool: &PgPool,
    sales: &[Pending<'_>],
    unwritten: &[Unwritten<'_>],
    options: &ImportOptions,
    run_id: Uuid,
    timings: &mut Timings,
) -> Result<Vec<Outcome>, sqlx::Error> {
    let mut outcomes: Vec<Option<Outcome>> = (0..sales.len()).map(|_| None).collect();
    let (mut set_based, mut one_by_one) = if options.set_based {
        route(sales)
    } else {
        (Vec::new(), (0..sales.len()).collect())
    };
    let mut tx = timed(&mut timings.transaction, pool.begin()).await?;
    timed(
        &mut timings.transaction,
        sqlx::query("SET LOCAL stockx_sync.skip_notify = 'on'").execute(&mut *tx),
    )
    .await?;
    if !options.update && !set_based.is_empty() {
        // The early filter: a sale already recorded is skipped whatever the record says, so
        // a re-run only logs it.
        let keys: Vec<String> = set_based
            .iter()
            .map(|&i| order_key(&sales[i].sale.stockx_order_number).to_string())
            .collect();
        let recorded: HashSet<String> = timed(
            &mut timings.lookup,
            crate::sales::recorded_order_numbers(&mut *tx, &keys),
        )
        .await?
        .into_iter()
        .collect();
        if !recorded.is_empty() {
            let (skipped, rest): (Vec<usize>, Vec<usize>) = set_based
                .iter()
                .partition(|&&i| recorded.contains(order_key(&sales[i].sale.stockx_order_number)));
            timed(
                &mut timings.log,
                log_skipped(&mut tx, sales, &skipped, options, run_id),
            )
            .await?;
            for i in skipped {
                outcomes[i] = Some(Outcome {
                    status: "skipped".into(),
                    error: None,
                });
            }
            set_based = rest;
        }
    }
    if !set_based.is_empty() {
        timed(
            &mut timings.transaction,
            sqlx::query("SAVEPOINT import_set").execute(&mut *tx),
        )
        .await?;
        match write_set(&mut tx, sales, &set_based, options, run_id, timings).await {
            Ok(statuses) => {
                timed(
                    &mut timings.transaction,
                    sqlx::query("RELEASE SAVEPOINT import_set").execute(&mut *tx),
                )
                .await?;
                for (i, status) in statuses {
                    if status == "retry" {
                        one_by_one.push(i);
                    } else {
                        outcomes[i] = Some(Outcome {
                            status,
                            error: None,
                        });
                    }
                }
            }
            Err(e) => {
                // A record the checks let through was still refused (or another import wrote
                // the same order meanwhile): every record of the batch gets its own try.
                tracing::warn!(error = %e, records = set_based.len(), "set-based import refused; importing the batch one record at a time");
                timed(
                    &mut timings.transaction,
                    sqlx::query("ROLLBACK TO SAVEPOINT import_set").execute(&mut *tx),
                )
                .await?;
                one_by_one.extend(set_based);
            }
        }
    }
    // In file order, after the set-based ones: a repeated order number finds the first one.
    one_by_one.sort_unstable();
    if !one_by_one.is_empty() {
        let payload: Vec<serde_json::Value> = one_by_one
            .iter()
            .map(|&i| sale_json(sales[i].origin, sales[i].sale, &sales[i].warnings))
            .collect();
        let rows: Vec<OneByOneRow> = timed(
            &mut timings.one_by_one,
            sqlx::query_as(
                "SELECT idx, status, error FROM integration.import_sales($1, $2, $3, $4, $5)",
            )
            .bind(serde_json::Value::Array(payload))
            .bind(options.update)
            .bind(options.trigger.as_str())
            .bind(&options.synced_by)
            .bind(run_id)
            .fetch_all(&mut *tx),
        )
        .await?;
        for row in rows {
            if let Some(&i) = usize::try_from(row.idx - 1)
                .ok()
                .and_then(|k| one_by_one.get(k))
            {
                outcomes[i] = Some(Outcome {
                    status: row.status,
                    error: row.error,
                });
            }
        }
    }
    timed(
        &mut timings.log,
        log_unwritten(&mut tx, unwritten, options, run_id),
    )
    .await?;
    timed(&mut timings.transaction, tx.commit()).await?;
    Ok(outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or(Outcome {
                status: "failed".into(),
                error: Some("the database returned no outcome for this record".into()),
            })
        })
        .collect())
}

/// One record's outcome from `integration.import_sales`.
#[derive(sqlx::FromRow)]
struct OneByOneRow {
    idx: i32,
    status: String,
    error: Option<String>,
}

/// Splits a batch's sales (by index) into those for the set-based load and those to import one
/// at a time: a value the entry table would refuse or rewrite (where the error message, or
/// which order number is looked up, is the per-record import's to give), and every repeat of
/// an order number after its first appearance (it must find the first one written).
fn route(sales: &[Pending<'_>]) -> (Vec<usize>, Vec<usize>) {
    let mut first_seen: HashSet<String> = HashSet::new();
    let mut set_based = Vec::with_capacity(sales.len());
    let mut one_by_one = Vec::new();
    for (i, pending) in sales.iter().enumerate() {
        let key = order_key(&pending.sale.stockx_order_number);
        let repeat = !first_seen.insert(key.to_string());
        if repeat || !plain_sale(pending.sale) {
            one_by_one.push(i);
        } else {
            set_based.push(i);
        }
    }
    (set_based, one_by_one)
}

/// Characters the entry table strips from the ends of an order number and folds in names.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{180e}' | '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}'
        )
}

fn is_control(c: char) -> bool {
    matches!(c, '\u{1}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// The order number as the entry table stores it (its key for repeats).
fn order_key(order_number: &str) -> &str {
    order_number.trim_matches(is_invisible)
}

/// Whether the entry table takes the sale as it is: the checks of its INSERT trigger, and an
/// order number without anything but printable text inside (so that the number looked up and
/// the number stored are the same). The database checks again; this only spares it the
/// records it would hand back.
fn plain_sale(sale: &SaleRecord) -> bool {
    let order = sale.stockx_order_number.trim_matches(' ');
    let order_ok = !order.is_empty()
        && order.chars().count() <= 100
        && order
            .chars()
            .all(|c| c == ' ' || !(is_invisible(c) || is_control(c)));
    let name_ok = |name: &str| {
        let trimmed = name.trim_matches(is_invisible);
        !trimmed.is_empty() && trimmed.chars().count() <= 200 && !name.chars().any(is_control)
    };
    let limit = Decimal::from(10_000_000_000i64);
    let amount_ok = |d: Decimal| d.round_dp(2).abs() < limit;
    let purchase = sale.purchase_price.round_dp(2);
    let net = sale.net_proceeds.round_dp(2);
    let profit = sale.profit.map(|p| p.round_dp(2)).unwrap_or(net - purchase);
    let roi_ok = match sale.roi {
        Some(roi) => roi.round_dp(4).abs() < Decimal::from(100_000_000),
        // Computed from the profit as recorded (migration 40).
        None if purchase > Decimal::ZERO => (profit / purchase)
            .round_dp(4)
            .abs()
            .lt(&Decimal::from(100_000_000)),
        None => true,
    };
    let date_ok = |d: Date| (1900..=2100).contains(&d.year());
    order_ok
        && name_ok(&sale.sku)
        && name_ok(&sale.size)
        && name_ok(&sale.supplier)
        && sale
            .size_region
            .as_deref()
            .is_none_or(|r| !r.chars().any(is_control))
        && amount_ok(sale.purchase_price)
        && purchase >= Decimal::ZERO
        && amount_ok(sale.net_proceeds)
        && sale
            .sale_price
            .is_none_or(|p| amount_ok(p) && p.round_dp(2) >= Decimal::ZERO)
        && profit.abs() < limit
        && roi_ok
        && date_ok(sale.sold_at)
        && sale.purchase_date.is_none_or(date_ok)
        && sale.delivered_at.is_none_or(date_ok)
}

/// The set-based load of the sales at `which`: COPY into the session's load table, then one
/// call of `integration.import_sales_staged`. Returns (index into `sales`, status) for each.
async fn write_set(
    tx: &mut sqlx::PgConnection,
    sales: &[Pending<'_>],
    which: &[usize],
    options: &ImportOptions,
    run_id: Uuid,
    timings: &mut Timings,
) -> Result<Vec<(usize, String)>, sqlx::Error> {
    let copied = Instant::now();
    sqlx::query("SELECT integration.import_stage_open()")
        .execute(&mut *tx)
        .await?;
    let mut data = String::with_capacity(which.len() * 200);
    for (k, &i) in which.iter().enumerate() {
        load_row(&mut data, k + 1, &sales[i]);
    }
    let mut copy = tx
        .copy_in_raw(
            "COPY pg_temp.import_sales_load (idx, source, page, raw_order, sku, size, region,
                 supplier, purchase_price, purchase_date, sale_price, net_proceeds, profit, roi,
                 sold_at, delivered_at, notes, warnings) FROM STDIN",
        )
        .await?;
    copy.send(data.into_bytes()).await?;
    copy.finish().await?;
    timings.copy += copied.elapsed();

    let rows: Vec<StagedRow> = timed(
        &mut timings.load,
        sqlx::query_as("SELECT idx, status FROM integration.import_sales_staged($1, $2, $3, $4)")
            .bind(options.update)
            .bind(options.trigger.as_str())
            .bind(&options.synced_by)
            .bind(run_id)
            .fetch_all(&mut *tx),
    )
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let i = *which.get(usize::try_from(row.idx - 1).ok()?)?;
            Some((i, row.status))
        })
        .collect())
}

/// One record's outcome from `integration.import_sales_staged`.
#[derive(sqlx::FromRow)]
struct StagedRow {
    idx: i32,
    status: String,
}

/// One line of COPY's text format for `pg_temp.import_sales_load`.
fn load_row(out: &mut String, idx: usize, pending: &Pending<'_>) {
    let Pending {
        origin,
        sale,
        warnings,
    } = pending;
    let decimal = |d: Option<Decimal>| d.map(|d| d.to_string());
    let date = |d: Option<Date>| d.map(|d| d.to_string());
    let fields: [Option<String>; 18] = [
        Some(idx.to_string()),
        Some(origin.to_string()),
        page_id(origin).map(str::to_string),
        Some(sale.stockx_order_number.clone()),
        Some(sale.sku.clone()),
        Some(sale.size.clone()),
        sale.size_region.clone(),
        Some(sale.supplier.clone()),
        decimal(Some(sale.purchase_price)),
        date(sale.purchase_date),
        decimal(sale.sale_price),
        decimal(Some(sale.net_proceeds)),
        decimal(sale.profit),
        decimal(sale.roi),
        date(Some(sale.sold_at)),
        date(sale.delivered_at),
        sale.notes.clone(),
        Some(warnings.join("\u{1f}")),
    ];
    copy_line(out, &fields);
}

/// Appends one line of COPY's text format: fields separated by tabs, `\N` for NULL, and
/// backslash, tab, newline and carriage return escaped inside a value.
fn copy_line(out: &mut String, fields: &[Option<String>]) {
    for (n, field) in fields.iter().enumerate() {
        if n > 0 {
            out.push('\t');
        }
        match field {
            None => out.push_str("\\N"),
            Some(value) => {
                for c in value.chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\t' => out.push_str("\\t"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        c => out.push(c),
                    }
                }
            }
        }
    }
    out.push('\n');
}

/// A PostgreSQL array literal of text elements, each quoted.
fn text_array_literal(items: &[String]) -> String {
    let mut out = String::from("{");
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push('"');
        for c in item.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}

fn page_id(origin: &RecordSource) -> Option<&str> {
    match origin {
        RecordSource::NotionPage { page_id, .. } => Some(page_id.as_str()),
        RecordSource::CsvRow { .. } => None,
    }
}

/// The first `n` characters (the sync log's columns are varchar(100)).
fn cut(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Sync-log rows, COPYed, for the sales at `which` found already recorded: skipped, with their
/// validation findings, as the set-based load logs them.
async fn log_skipped(
    tx: &mut sqlx::PgConnection,
    sales: &[Pending<'_>],
    which: &[usize],
    options: &ImportOptions,
    run_id: Uuid,
) -> Result<(), sqlx::Error> {
    let mut data = String::with_capacity(which.len() * 120);
    let synced_by = cut(&options.synced_by, 100);
    let run_id = run_id.to_string();
    for &i in which {
        let Pending {
            origin,
            sale,
            warnings,
        } = &sales[i];
        copy_line(
            &mut data,
            &[
                Some(cut(order_key(&sale.stockx_order_number), 100)),
                page_id(origin).map(|p| cut(p, 100)),
                Some("skipped".to_string()),
                Some(options.trigger.as_str().to_string()),
                Some(text_array_literal(warnings)),
                Some("0".to_string()),
                Some(synced_by.clone()),
                Some(run_id.clone()),
            ],
        );
    }
    let mut copy = tx
        .copy_in_raw(
            "COPY integration.notion_sale_sync_log (stockx_order_number, notion_page_id,
                 sync_status, trigger_type, validation_warnings, sync_duration_ms, synced_by,
                 run_id) FROM STDIN",
        )
        .await?;
    copy.send(data.into_bytes()).await?;
    copy.finish().await?;
    Ok(())
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

/// Sync-log rows for records not written: unreadable ones (named by their order number when
/// it could be read, else by where they came from) and other platforms' rows.
async fn log_unwritten(
    tx: &mut sqlx::PgConnection,
    unwritten: &[Unwritten<'_>],
    options: &ImportOptions,
    run_id: Uuid,
) -> Result<(), sqlx::Error> {
    if unwritten.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = unwritten
        .iter()
        .map(|u| {
            u.order_number
                .clone()
                .filter(|o| !o.trim().is_empty())
                .unwrap_or_else(|| u.origin.to_string())
        })
        .collect();
    let pages: Vec<Option<&str>> = unwritten
        .iter()
        .map(|u| match u.origin {
            RecordSource::NotionPage { page_id, .. } => Some(page_id.as_str()),
            RecordSource::CsvRow { .. } => None,
        })
        .collect();
    let statuses: Vec<&str> = unwritten.iter().map(|u| u.status).collect();
    let messages: Vec<&str> = unwritten.iter().map(|u| u.message.as_str()).collect();
    sqlx::query(
        "INSERT INTO integration.notion_sale_sync_log
             (stockx_order_number, notion_page_id, sync_status, trigger_type, validation_warnings,
              error_message, sync_duration_ms, synced_by, run_id)
         SELECT left(s, 100), left(p, 100), st, $5, '{}', e, 0, left($6, 100), $7
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(s, p, st, e)",
    )
    .bind(&names)
    .bind(&pages)
    .bind(&statuses)
    .bind(&messages)
    .bind(options.trigger.as_str())
    .bind(&options.synced_by)
    .bind(run_id)
    .execute(tx)
    .await?;
    Ok(())
}
