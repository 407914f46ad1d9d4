//! Metric names: the README's metrics table in one place, so the code that records a metric,
//! the dashboards and the alert rules cannot drift apart.
//!
//! Prefix `stockx_sync_`, base units, counters end in `_total`. Labels are listed beside each
//! name; label values are bounded sets (never an ID).

/// counter; `kind` (order, inventory, notion_writeback), `outcome` (enriched, not_found, validated,
/// retried, failed, superseded; write-backs: written, unchanged, skipped)
pub const JOBS_TOTAL: &str = "stockx_sync_jobs_total";
/// histogram; `kind`
pub const JOB_DURATION_SECONDS: &str = "stockx_sync_job_duration_seconds";
/// histogram; row committed → job claimed
pub const JOB_LAG_SECONDS: &str = "stockx_sync_job_lag_seconds";
/// gauge; `status` (available, running, retryable, completed, failed)
pub const QUEUE_JOBS: &str = "stockx_sync_queue_jobs";
/// counter; `api` (stockx, notion), `endpoint` (route template), `status` (HTTP code or `error`)
pub const API_REQUESTS_TOTAL: &str = "stockx_sync_api_requests_total";
/// histogram; `api`, `endpoint`
pub const API_REQUEST_DURATION_SECONDS: &str = "stockx_sync_api_request_duration_seconds";
/// counter; `api` — 429 answers received
pub const API_THROTTLED_TOTAL: &str = "stockx_sync_api_throttled_total";
/// counter; `rule`
pub const VALIDATION_WARNINGS_TOTAL: &str = "stockx_sync_validation_warnings_total";
/// counter; `outcome` (created, updated, skipped, failed)
pub const BACKFILL_ROWS_TOTAL: &str = "stockx_sync_backfill_rows_total";
/// counter; reconnects of the LISTEN connection
pub const LISTENER_RECONNECTS_TOTAL: &str = "stockx_sync_listener_reconnects_total";

// What the alert rules need to see a stuck queue.
/// gauge; age in seconds of the oldest job waiting to run (0 when none waits)
pub const QUEUE_OLDEST_AVAILABLE_AGE_SECONDS: &str =
    "stockx_sync_queue_oldest_available_age_seconds";
/// gauge; orders whose enrichment_status has been `pending` for more than 24 h
pub const ORDERS_PENDING_OVER_24H: &str = "stockx_sync_orders_pending_over_24h";
/// gauge; 1 while the LISTEN connection is up, 0 otherwise (always 0 in poll-only mode)
pub const LISTENER_UP: &str = "stockx_sync_listener_up";

// The worker's scheduled tasks (`task`: notion_reconcile, refresh_stale).
/// counter; `task`, `outcome` (success, failed)
pub const SCHEDULED_RUNS_TOTAL: &str = "stockx_sync_scheduled_runs_total";
/// gauge; `task` — Unix time of the task's last successful run by any worker (the time the
/// schedule was set up while it has never succeeded), read from the database
pub const SCHEDULED_LAST_SUCCESS_TIMESTAMP_SECONDS: &str =
    "stockx_sync_scheduled_last_success_timestamp_seconds";
/// gauge; `task` — runs that failed since the last success, by any worker
pub const SCHEDULED_CONSECUTIVE_FAILURES: &str = "stockx_sync_scheduled_consecutive_failures";

// What the stock is worth (the market refresh and the valuation views).
/// counter; `outcome` (refreshed, empty, failed, budget) — products the market refresh asked
/// StockX about
pub const MARKET_REFRESH_PRODUCTS_TOTAL: &str = "stockx_sync_market_refresh_products_total";
/// counter; pauses of the market refresh while enrichment jobs were due or running
pub const MARKET_REFRESH_YIELDS_TOTAL: &str = "stockx_sync_market_refresh_yields_total";
/// gauge; unsold items in `reporting.dead_stock` (held too long, or worth less than paid)
pub const DEAD_STOCK_ITEMS: &str = "stockx_sync_dead_stock_items";
