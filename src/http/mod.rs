//! The worker's HTTP listener (`STOCKX_SYNC_HTTP_ADDR`): `/metrics` for Prometheus, `/healthz`
//! (the process is alive) and `/readyz` (it can do its work: database reachable, LISTEN
//! connection up, StockX neither refusing our credentials nor blocking us, claims working),
//! with the reason when it cannot.
//!
//! The listener may face more than Prometheus (n8n calls the POST endpoints), so a client
//! cannot hold a connection open for free: request headers must arrive within
//! `http.read_timeout_secs` (10 s), and an idle keep-alive connection is closed after the same
//! time, since waiting for the next request's headers is the same wait.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub mod notion;

use crate::metrics as m;
use crate::queue::Health;

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder once per process and returns its handle.
pub fn metrics_handle() -> PrometheusHandle {
    RECORDER
        .get_or_init(|| {
            let seconds = &[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0,
            ];
            let lag = &[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 60.0,
                300.0, 900.0, 3600.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(m::JOB_LAG_SECONDS.into()), lag)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), seconds))
                .expect("static buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests); then ours only renders zeros,
            // which is harmless.
            let _ = metrics::set_global_recorder(recorder);
            describe_metrics();
            register_counters_at_zero();
            handle
        })
        .clone()
}

/// Counters with a known label set start at 0, so that a rate over them is 0 rather than
/// missing, and dashboards and alerts see the series before the first event.
fn register_counters_at_zero() {
    for kind in ["order", "inventory"] {
        for outcome in [
            "enriched",
            "not_found",
            "validated",
            "retried",
            "failed",
            "superseded",
        ] {
            metrics::counter!(m::JOBS_TOTAL, "kind" => kind, "outcome" => outcome).increment(0);
        }
    }
    for api in ["stockx", "notion"] {
        metrics::counter!(m::API_THROTTLED_TOTAL, "api" => api).increment(0);
    }
    for rule in crate::validate::ALL_RULES {
        metrics::counter!(m::VALIDATION_WARNINGS_TOTAL, "rule" => rule.code()).increment(0);
    }
    for outcome in ["created", "updated", "skipped", "failed"] {
        metrics::counter!(m::BACKFILL_ROWS_TOTAL, "outcome" => outcome).increment(0);
    }
    metrics::counter!(m::LISTENER_RECONNECTS_TOTAL).increment(0);
}

fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(m::JOBS_TOTAL, "Jobs run, by kind and outcome");
    describe_histogram!(
        m::JOB_DURATION_SECONDS,
        Unit::Seconds,
        "Time to run one job"
    );
    describe_histogram!(
        m::JOB_LAG_SECONDS,
        Unit::Seconds,
        "Row committed to job claimed"
    );
    describe_gauge!(m::QUEUE_JOBS, "Jobs in the queue table, by state");
    describe_counter!(m::API_REQUESTS_TOTAL, "Requests to StockX and Notion");
    describe_histogram!(
        m::API_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "API request time"
    );
    describe_counter!(m::API_THROTTLED_TOTAL, "429 answers received");
    describe_counter!(
        m::VALIDATION_WARNINGS_TOTAL,
        "Validation findings raised, by rule"
    );
    describe_counter!(
        m::BACKFILL_ROWS_TOTAL,
        "Imported Notion records, by outcome"
    );
    describe_counter!(
        m::LISTENER_RECONNECTS_TOTAL,
        "Reconnects of the LISTEN connection"
    );
    describe_gauge!(
        m::QUEUE_OLDEST_AVAILABLE_AGE_SECONDS,
        Unit::Seconds,
        "Age of the oldest due job"
    );
    describe_gauge!(
        m::ORDERS_PENDING_OVER_24H,
        "Orders pending enrichment for more than 24 h"
    );
    describe_gauge!(m::LISTENER_UP, "1 while the LISTEN connection is up");
    describe_gauge!(
        m::DEAD_STOCK_ITEMS,
        "Unsold items held too long or worth less than paid (reporting.dead_stock)"
    );
    describe_counter!(
        m::MARKET_REFRESH_PRODUCTS_TOTAL,
        "Products the market refresh asked StockX about, by outcome"
    );
    describe_counter!(
        m::MARKET_REFRESH_YIELDS_TOTAL,
        "Pauses of the market refresh for enrichment jobs"
    );
}

/// What the handlers need.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub health: Arc<Health>,
    pub metrics: PrometheusHandle,
    /// Poll-only workers have no LISTEN connection; readiness does not require one.
    pub poll_only: bool,
}

/// `/metrics`, `/healthz`, `/readyz`, and the Notion endpoints when `bridge` is given.
pub fn router(state: AppState, bridge: Option<Arc<notion::NotionBridge>>) -> Router {
    let base = Router::new()
        .route("/metrics", get(metrics_endpoint))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state);
    match bridge {
        Some(bridge) => base.merge(notion::routes(bridge)),
        None => base,
    }
}

async fn metrics_endpoint(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let mut problems = Vec::new();
    let db = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        sqlx::query("SELECT 1").execute(&state.pool),
    )
    .await;
    match db {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => problems.push(format!("database unreachable: {e}")),
        Err(_) => problems.push("database unreachable: no answer within 2 s".into()),
    }
    if !state.poll_only && !state.health.listener_up.load(Ordering::Relaxed) {
        problems.push("LISTEN connection is down (reconnecting)".into());
    }
    if let Some(reason) = state.health.blocked_reason.lock().expect("lock").clone() {
        problems.push(reason);
    }
    if let Some(problem) = state.health.claimer_problem() {
        problems.push(problem);
    }
    if problems.is_empty() {
        (StatusCode::OK, Json(serde_json::json!({"ready": true})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"ready": false, "reasons": problems})),
        )
    }
}

/// How long a client may take to send a request's headers (and to send the next one on a
/// kept-alive connection), and a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    pub read_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            read_timeout: Duration::from_secs(10),
        }
    }
}

/// Time open connections get to finish their requests once the server stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `router` on `addr` until `shutdown`. Returns the bound address (port 0 allowed).
pub async fn serve(
    addr: SocketAddr,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((bound, serve_listener(listener, app, shutdown)))
}

/// Serves `router` on a bound listener until `shutdown`, with the default timeouts.
pub fn serve_listener(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    serve_listener_with(listener, app, shutdown, ServeOptions::default())
}

/// Serves `router` on a bound listener until `shutdown`: HTTP/1.1 with the header-read and
/// idle timeout of `options`; on shutdown, stops accepting, lets open requests finish (up to
/// 10 s), and closes idle connections.
pub fn serve_listener_with(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: CancellationToken,
    options: ServeOptions,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
            let (stream, _) = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: pause rather than spin.
                        tracing::warn!(error = %e, "HTTP accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            let stop = shutdown.clone();
            connections.spawn(async move {
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(options.read_timeout)
                    .keep_alive(true);
                let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                tokio::pin!(conn);
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(error = %e, "HTTP connection ended");
                        }
                        return;
                    }
                    _ = stop.cancelled() => conn.as_mut().graceful_shutdown(),
                }
                let _ = conn.await;
            });
        }
        drop(listener);
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("HTTP connections still open after the grace period; closing them");
            connections.shutdown().await;
        }
    })
}
