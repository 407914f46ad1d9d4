//! `stockx-sync worker` and `stockx-sync sync-order`: the worker put together from the settings
//! (queue pool, StockX client, enricher, HTTP server), and one order enriched in the foreground.

use std::sync::Arc;

use serde::Serialize;
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::db::Database;
use crate::enrich::{self, Enricher};
use crate::queue::{Job, JobKind};
use crate::worker::{Health, Worker, WorkerOptions};

/// Runs until `stop` is cancelled.
pub async fn run(
    settings: &Settings,
    database: &Database,
    poll_only: bool,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let health = Arc::new(Health::default());
    let client = crate::stockx::client_from_settings(settings)?;
    match &client {
        Some(_) => {
            let n = enrich::enqueue_pending(&database.pool).await?;
            if n > 0 {
                tracing::info!(jobs = n, "enqueued rows still pending enrichment");
            }
        }
        None => tracing::warn!(
            "StockX credentials are not set (STOCKX_API_KEY, STOCKX_CLIENT_ID, STOCKX_CLIENT_SECRET, STOCKX_REFRESH_TOKEN): validating only; orders stay pending"
        ),
    }
    let enricher = Arc::new(Enricher::new(
        database.pool.clone(),
        client,
        settings.stockx.currency.clone(),
        health.clone(),
    ));
    let options = WorkerOptions::from_settings(&settings.worker, poll_only);
    // The queue's own statements get a small pool with asynchronous commit (see
    // `queue_connect_options`); the enrichment writes use the main pool.
    let queue_pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(crate::worker::queue_connect_options(
            database.connect_options.clone(),
        ))
        .await?;

    let metrics = crate::http::metrics_handle();
    let app = crate::http::router(
        crate::http::AppState {
            pool: database.pool.clone(),
            health: health.clone(),
            metrics,
            poll_only,
        },
        Some(crate::http::notion::NotionBridge::new(
            database.pool.clone(),
            settings.clone(),
        )),
    );
    let http_stop = CancellationToken::new();
    let (addr, http_task) = crate::http::serve(settings.http.addr, app, http_stop.clone())
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on STOCKX_SYNC_HTTP_ADDR {}: {e}",
                settings.http.addr
            )
        })?;
    tracing::info!(%addr, "HTTP listening: /metrics /healthz /readyz");

    let worker = Worker::with_health(queue_pool.clone(), options, enricher, health);
    let result = worker.run(stop).await;
    http_stop.cancel();
    let _ = http_task.await;
    queue_pool.close().await;
    Ok(result?)
}

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
pub async fn sync_order(
    settings: &Settings,
    database: &Database,
    order_number: &str,
    force: bool,
) -> anyhow::Result<SyncReport> {
    let pool = &database.pool;
    let Some(order_id) = enrich::find_order_id(pool, order_number).await? else {
        return Ok(SyncReport {
            ok: false,
            order_number: order_number.to_string(),
            outcome: "unknown".into(),
            changes: vec![],
            warnings: vec![],
            error: Some("no such order in the database (enter it first, e.g. through platforms.stockx_sale_entry)".into()),
        });
    };
    let (inventory_id, product_id): (uuid::Uuid, uuid::Uuid) = sqlx::query_as(
        "SELECT l.inventory_id, l.product_id FROM platforms.stockx_orders o
         JOIN platforms.stockx_listings l ON l.id = o.listing_id WHERE o.id = $1",
    )
    .bind(order_id)
    .fetch_one(pool)
    .await?;
    if force {
        sqlx::query(
            "UPDATE products.products SET stockx_lookup_status = NULL
             WHERE id = $1 AND stockx_lookup_status = 'not_found'",
        )
        .bind(product_id)
        .execute(pool)
        .await?;
    }
    let client = crate::stockx::client_from_settings(settings)?;
    if client.is_none() {
        tracing::warn!("StockX credentials are not set: validating only");
    }
    let enricher = Enricher::new(
        pool.clone(),
        client,
        settings.stockx.currency.clone(),
        Arc::new(Health::default()),
    );
    let job = |kind, entity_id| Job {
        id: 0,
        kind,
        entity_id,
        attempt: 1,
        max_attempts: 1,
        lag_seconds: 0.0,
    };
    let mut report = SyncReport {
        ok: true,
        order_number: order_number.to_string(),
        outcome: String::new(),
        changes: vec![],
        warnings: vec![],
        error: None,
    };
    for (kind, id) in [
        (JobKind::Inventory, inventory_id),
        (JobKind::Order, order_id),
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
