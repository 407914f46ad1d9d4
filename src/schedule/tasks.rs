//! The tasks the worker runs on its schedule, and which of them the settings turn on.
//!
//! - `notion_reconcile` (`schedule.reconcile`, 02:00 by default): the incremental Notion
//!   import from the last watermark, logged with trigger `scheduled`. It catches the sales the
//!   webhook (n8n) missed. Off without a Notion source.
//! - `refresh_stale` (`schedule.refresh`, 02:30 by default): StockX adds products and orders
//!   after we asked, so "not found" and failed enrichments are queued again (the products'
//!   "not found" answers forgotten first, so the inventory jobs ask StockX again); sales with
//!   open warnings are checked again; with Notion write-back on, sales whose page never got a
//!   status get a write-back job. The queue does the work; this task only enqueues.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::PgPool;

use super::{CronSchedule, ScheduleError, ScheduledTask, Scheduler, SchedulerOptions, TaskResult};
use crate::config::Settings;
use crate::notion::backfill::{self, ProgressLog, Since};
use crate::notion::import::{ImportOptions, Trigger};
use crate::notion::writeback;
use crate::queue::{self, JobKind};
use crate::sales;
use crate::validate::store::rows_with_open_warnings;

pub const NOTION_RECONCILE: &str = "notion_reconcile";
pub const REFRESH_STALE: &str = "refresh_stale";

/// The scheduler the settings ask for, or None when no task is on.
///
/// `has_stockx`: whether this worker enriches from StockX (without it, re-queuing "not found"
/// answers would only re-validate).
pub fn scheduler_from_settings(
    settings: &Settings,
    pool: PgPool,
    has_stockx: bool,
    options: SchedulerOptions,
) -> Result<Option<Scheduler>, ScheduleError> {
    let schedule = &settings.schedule;
    if !schedule.enabled {
        tracing::info!("the schedule is off (schedule.enabled = false)");
        return Ok(None);
    }
    let mut scheduler = Scheduler::new(pool.clone(), options);
    if settings.notion_source_present() {
        scheduler.add(
            Arc::new(NotionReconcile {
                settings: settings.clone(),
                pool: pool.clone(),
            }),
            CronSchedule::parse(&schedule.reconcile, &schedule.time_zone)?,
        );
    } else {
        tracing::info!("no Notion source (NOTION_TOKEN, NOTION_DATABASE_ID): no scheduled Notion reconciliation");
    }
    scheduler.add(
        Arc::new(RefreshStale {
            pool,
            has_stockx,
            writeback: settings.notion.writeback,
        }),
        CronSchedule::parse(&schedule.refresh, &schedule.time_zone)?,
    );
    Ok(Some(scheduler))
}

/// The incremental Notion import.
pub struct NotionReconcile {
    settings: Settings,
    pool: PgPool,
}

impl ScheduledTask for NotionReconcile {
    fn name(&self) -> &'static str {
        NOTION_RECONCILE
    }

    fn run(&self) -> BoxFuture<'_, TaskResult> {
        Box::pin(async move {
            let options = ImportOptions {
                trigger: Trigger::Scheduled,
                synced_by: "scheduler".into(),
                ..ImportOptions::default()
            };
            let mut progress = ProgressLog::default();
            let report = backfill::backfill_api(
                &self.settings,
                &self.pool,
                Since::Watermark,
                &options,
                &mut |done, total| progress.update(done, total),
            )
            .await
            .map_err(|e| e.to_string())?;
            Ok(format!(
                "{} records: created {}, updated {}, skipped {}, other platforms {}, failed {} (run {})",
                report.records,
                report.created,
                report.updated,
                report.skipped,
                report.skipped_other_platform,
                report.failed,
                report.run_id
            ))
        })
    }
}

/// Re-queues what goes stale; see the module documentation.
pub struct RefreshStale {
    pool: PgPool,
    has_stockx: bool,
    writeback: bool,
}

impl RefreshStale {
    pub fn new(pool: PgPool, has_stockx: bool, writeback: bool) -> RefreshStale {
        RefreshStale {
            pool,
            has_stockx,
            writeback,
        }
    }

    /// One refresh; also what the task runs.
    pub async fn refresh(&self) -> Result<String, sqlx::Error> {
        let mut parts = Vec::new();
        if self.has_stockx {
            let forgotten = sales::forget_products_not_found(&self.pool).await?;
            let stale = sales::stale_enrichment(&self.pool).await?;
            let orders = self.enqueue(JobKind::Order, &stale.orders).await?;
            let items = self.enqueue(JobKind::Inventory, &stale.inventory).await?;
            parts.push(format!(
                "asked StockX again for {forgotten} products it did not know; queued {orders} of {} not-found/failed orders and {items} of {} items without a variant",
                stale.orders.len(),
                stale.inventory.len()
            ));
        }
        let warned = rows_with_open_warnings(&self.pool).await?;
        let orders = self.enqueue(JobKind::Order, &warned.orders).await?;
        let items = self.enqueue(JobKind::Inventory, &warned.inventory).await?;
        parts.push(format!(
            "re-checking open warnings: queued {orders} of {} orders and {items} of {} items",
            warned.orders.len(),
            warned.inventory.len()
        ));
        if self.writeback {
            let unwritten = writeback::orders_without_status(&self.pool).await?;
            let queued = self.enqueue(JobKind::NotionWriteback, &unwritten).await?;
            parts.push(format!(
                "queued {queued} Notion write-backs for pages without a status"
            ));
        }
        Ok(parts.join("; "))
    }

    async fn enqueue(&self, kind: JobKind, ids: &[uuid::Uuid]) -> Result<u64, sqlx::Error> {
        queue::enqueue_jobs(&self.pool, kind, ids, Duration::ZERO).await
    }
}

impl ScheduledTask for RefreshStale {
    fn name(&self) -> &'static str {
        REFRESH_STALE
    }

    fn run(&self) -> BoxFuture<'_, TaskResult> {
        Box::pin(async move { self.refresh().await.map_err(|e| format!("database: {e}")) })
    }
}
