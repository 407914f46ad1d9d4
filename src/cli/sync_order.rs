//! `stockx-sync sync-order ORDER_NUMBER [--force]`: one order (and its inventory item) enriched
//! now, in the foreground, with the same enricher the worker uses; prints what changed.

use std::sync::Arc;

use serde::Serialize;
use sqlx::PgPool;

use crate::config::Settings;
use crate::enrich::Enricher;
use crate::queue::{Health, Job, JobKind};
use crate::sales;

/// What `sync-order` did.
#[derive(Debug, Serialize)]
pub struct SyncReport {
    pub ok: bool,
    pub order_number: String,
    pub outcome: String,
    pub changes: Vec<String>,
    pub warnings: Vec<String>,
    pub error: Option<String>,
}

impl std::fmt::Display for SyncReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "order {}: {}", self.order_number, self.outcome)?;
        for change in &self.changes {
            writeln!(f, "  changed: {change}")?;
        }
        for warning in &self.warnings {
            writeln!(f, "  warning: {warning}")?;
        }
        match &self.error {
            Some(error) => write!(f, "  error: {error}"),
            None => write!(
                f,
                "  {} change(s), {} warning(s)",
                self.changes.len(),
                self.warnings.len()
            ),
        }
    }
}

/// Enriches one order (and its inventory item) now. `force` forgets an earlier "not found"
/// for its SKU first.
pub async fn run(
    settings: &Settings,
    pool: &PgPool,
    order_number: &str,
    force: bool,
) -> anyhow::Result<SyncReport> {
    let mut report = SyncReport {
        ok: true,
        order_number: order_number.to_string(),
        outcome: String::new(),
        changes: vec![],
        warnings: vec![],
        error: None,
    };
    let Some(order) = sales::find_order(pool, order_number).await? else {
        report.ok = false;
        report.outcome = "unknown".into();
        report.error = Some(
            "no such order in the database (enter it first, e.g. through platforms.stockx_sale_entry)"
                .into(),
        );
        return Ok(report);
    };
    if force {
        sales::forget_product_not_found(pool, order.product_id).await?;
    }
    // A person asked for this one order: ask StockX for it now, never defer it behind a
    // backlog's order lists.
    let enricher = Enricher::from_settings(pool.clone(), settings, Arc::new(Health::default()))?
        .with_bulk_orders_threshold(0);
    if !enricher.has_stockx() {
        tracing::warn!("StockX credentials are not set: validating only");
    }
    let job = |kind, entity_id| Job {
        id: 0,
        kind,
        entity_id,
        attempt: 1,
        max_attempts: 1,
        lag_seconds: 0.0,
    };
    for (kind, id) in [
        (JobKind::Inventory, order.inventory_id),
        (JobKind::Order, order.order_id),
    ] {
        match enricher.run_job(&job(kind, id)).await {
            Ok(done) => {
                report.outcome = done.outcome;
                report.changes.extend(done.changes);
                for warning in done.warnings {
                    if !report.warnings.contains(&warning) {
                        report.warnings.push(warning);
                    }
                }
            }
            Err(e) => {
                report.ok = false;
                report.outcome = "failed".into();
                report.error = Some(e.to_string());
                break;
            }
        }
    }
    Ok(report)
}
