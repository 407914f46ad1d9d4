//! One place that puts a running stockx-sync together: `App::build(&settings, pool)` makes the
//! queue's own pool, the StockX client, the enricher, the worker and the HTTP listener (bound at
//! once, so its address is known before anything runs); `run_until_stopped(shutdown)` runs them
//! until the token is cancelled and then stops them in order (worker first, so running jobs can
//! finish; then a running Notion batch sync; then the HTTP server; then the queue's pool).
//!
//! The real program also runs the scheduler (`schedule`: the nightly Notion reconciliation and
//! the daily refresh), stopped by the same token, and wraps the enricher so that Notion
//! write-back jobs run beside the enrichment when `notion.writeback` is on.
//!
//! The `worker` command, `demo`, `bench` and the integration tests all start the program this
//! way; they differ only in their settings (and the benchmark's no-op job handler).

use std::net::SocketAddr;
use std::sync::Arc;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::enrich::Enricher;
use crate::http::{self, notion::NotionBridge};
use crate::notion::backfill::BackfillError;
use crate::notion::writeback::{WithWriteback, Writeback};
use crate::queue::{self, Health, JobHandler, Worker, WorkerOptions};
use crate::schedule::{self, ScheduleError, Scheduler, SchedulerOptions};
use crate::stockx::StockxError;

/// Connections of the queue's own pool: one each kept by the claimer and the completer, the
/// keeper, and the per-job failure/postpone writes.
const QUEUE_POOL_SIZE: u32 = 6;
/// Time a cancelled Notion batch sync gets to end before it is aborted.
const BATCH_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Why the program could not be put together.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("StockX client: {0}")]
    Stockx(#[from] StockxError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("schedule: {0}")]
    Schedule(#[from] ScheduleError),
    #[error("Notion write-back: {0}")]
    Writeback(#[from] BackfillError),
    #[error("cannot listen on STOCKX_SYNC_HTTP_ADDR {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A worker process, built and not yet running.
pub struct App {
    queue_pool: PgPool,
    worker: Worker,
    listener: tokio::net::TcpListener,
    router: axum::Router,
    http_addr: SocketAddr,
    scheduler: Option<Scheduler>,
    http_options: http::ServeOptions,
    /// The Notion endpoints, whose background batch stops with the program.
    bridge: Option<Arc<NotionBridge>>,
}

impl App {
    /// The real program: the StockX client from the settings (none without credentials: the
    /// worker then validates only), the enricher, and the Notion endpoints.
    ///
    /// `pool` is the database to work on; its connect options also open the queue's pool.
    pub async fn build(settings: &Settings, pool: PgPool) -> Result<App, AppError> {
        let health = Arc::new(Health::default());
        let enricher = Arc::new(Enricher::from_settings(
            pool.clone(),
            settings,
            health.clone(),
        )?);
        if enricher.has_stockx() {
            let n = queue::enqueue_pending(&pool).await?;
            if n > 0 {
                tracing::info!(jobs = n, "enqueued rows still pending enrichment");
            }
        } else {
            tracing::warn!(
                "StockX credentials are not set (STOCKX_API_KEY, STOCKX_CLIENT_ID, STOCKX_CLIENT_SECRET, STOCKX_REFRESH_TOKEN): validating only; orders stay pending"
            );
        }
        let writeback = Writeback::from_settings(settings, pool.clone())?;
        let handler = Arc::new(WithWriteback::new(
            enricher.clone(),
            writeback,
            pool.clone(),
        ));
        let bridge = NotionBridge::new(pool.clone(), settings.clone());
        let mut app = Self::assemble(settings, pool.clone(), handler, health, Some(bridge)).await?;
        app.scheduler = schedule::tasks::scheduler_from_settings(
            settings,
            pool.clone(),
            enricher.has_stockx(),
            SchedulerOptions::default(),
        )?;
        crate::market::store::write_settings(
            &pool,
            &crate::market::store::ValuationSettings::from_settings(settings),
        )
        .await?;
        if let Some(scheduler) = app.scheduler.as_mut() {
            crate::market::add_scheduled_tasks(
                scheduler,
                settings,
                pool,
                enricher.stockx_client(),
            )?;
        }
        Ok(app)
    }

    /// The same program around another job handler (the benchmark's no-op), without the
    /// Notion endpoints.
    pub async fn build_with_handler(
        settings: &Settings,
        pool: PgPool,
        handler: Arc<dyn JobHandler>,
    ) -> Result<App, AppError> {
        Self::assemble(settings, pool, handler, Arc::new(Health::default()), None).await
    }

    async fn assemble(
        settings: &Settings,
        pool: PgPool,
        handler: Arc<dyn JobHandler>,
        health: Arc<Health>,
        bridge: Option<Arc<NotionBridge>>,
    ) -> Result<App, AppError> {
        let options = WorkerOptions::from_settings(&settings.worker);
        // Claims and completions commit as `worker.queue_synchronous_commit` says (default
        // asynchronously, see `QueueCommit`); the enrichment writes go through `pool` and
        // commit as the server is configured. No ping before each statement: a broken
        // connection fails its statement, which the claimer and completer retry on another.
        let queue_pool = PgPoolOptions::new()
            .max_connections(QUEUE_POOL_SIZE)
            .test_before_acquire(false)
            .connect_with(queue::queue_connect_options(
                (*pool.connect_options()).clone(),
                settings.worker.queue_synchronous_commit,
            ))
            .await?;
        let router = http::router(
            http::AppState {
                pool,
                health: health.clone(),
                metrics: http::metrics_handle(),
                poll_only: options.poll_only,
            },
            bridge.clone(),
        );
        let addr = settings.http.addr;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| AppError::Listen { addr, source })?;
        let http_addr = listener
            .local_addr()
            .map_err(|source| AppError::Listen { addr, source })?;
        let worker = Worker::with_health(queue_pool.clone(), options, handler, health);
        Ok(App {
            queue_pool,
            worker,
            listener,
            router,
            http_addr,
            scheduler: None,
            http_options: http::ServeOptions {
                read_timeout: settings.http.read_timeout(),
            },
            bridge,
        })
    }

    /// Where `/metrics`, `/healthz`, `/readyz` and the POST endpoints answer.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// What `/readyz` reports, shared with the worker and its job handler.
    pub fn health(&self) -> Arc<Health> {
        self.worker.health()
    }

    /// Serves HTTP and runs the worker and the scheduler until `shutdown` is cancelled, then
    /// stops gracefully.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), AppError> {
        tracing::info!(addr = %self.http_addr, "HTTP listening: /metrics /healthz /readyz");
        let http_stop = CancellationToken::new();
        let http_task = http::serve_listener_with(
            self.listener,
            self.router,
            http_stop.clone(),
            self.http_options,
        );
        let scheduler = self
            .scheduler
            .map(|s| tokio::spawn(s.run(shutdown.clone())));
        let result = self.worker.run(shutdown).await;
        if let Some(bridge) = &self.bridge {
            bridge.shutdown(BATCH_STOP_GRACE).await;
        }
        if let Some(scheduler) = scheduler {
            let _ = scheduler.await;
        }
        http_stop.cancel();
        let _ = http_task.await;
        self.queue_pool.close().await;
        Ok(result?)
    }
}
