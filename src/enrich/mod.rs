//! What a job does to a row: look the sale up on StockX, store what StockX says, and check it.
//! This module orchestrates; it reads and writes rows only through the sales store
//! (`crate::sales`) and the findings only through `validate::store`.
//!
//! - **order job** (`platforms.stockx_orders`): fetch the seller's order by number; store its
//!   status, sale price, payout, adjustments, its currency and the payout's, and the product
//!   and variant it sold; take product and variant IDs from it when the catalog has not given
//!   them yet and its style ID names the recorded SKU; compare StockX's currency and payout
//!   with the recorded net proceeds and StockX's product and variant with the catalog's match
//!   of the recorded SKU and size; run the sale rules. An order StockX does not know is `not_found`, not a retry.
//! - **inventory job** (`products.inventory`): resolve the SKU to a StockX product (once per SKU:
//!   the answer is stored on `products.products`, and concurrent jobs for one SKU wait for one
//!   lookup), the size to a variant (variants cached per product for an hour, fetched again once
//!   when a size is missing from a copy older than a few minutes), and store the variant's
//!   market data in the configured currency; then re-run the sale rules of the order it belongs
//!   to, since its purchase price and date are part of them, and the order-item check, since
//!   the catalog's match is. The caches are in [`cache`].
//!
//! Without StockX credentials a job only validates, and orders stay `pending` until a worker
//! with credentials runs (it enqueues what is still pending at start). StockX is asked first,
//! with no transaction open (a call can wait on the rate limiter, a `Retry-After` or a slow
//! answer); then a job's writes are one short transaction, with two exceptions written on their
//! own: the answer of a SKU lookup (stored at once, so that the jobs waiting for it reuse it)
//! and an order's `failed` status (written when the job gives up). Every write is idempotent:
//! running a job twice leaves the same rows.
//!
//! A job gives up on an order (marks it `failed` with the reason, so that no worker start
//! queues it again) when retrying cannot help: StockX rejected the request, the row holds data
//! this program cannot read (`NaN` in a price, a date such as `infinity` or year 12000), or
//! the job panicked; or when its last attempt failed. StockX refusing our credentials, blocking
//! us or still answering 429 is nobody's fault of the order's: the job waits, no attempt spent.

pub mod bulk;
pub mod cache;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

use crate::market::outliers;
use crate::queue::{is_data_error, panic_message, Health, JobHandler, JobResult};
use crate::queue::{Job, JobKind};
use crate::sales::{self, InventoryRow, ProductLookup, VariantWrite};
use crate::stockx::{self, DetailedOrder, MarketData, StockxClient, StockxError, Variant};
use crate::validate::store::{count_new_findings, record_findings, Subject};
use crate::validate::{self, Finding, Rule};
use cache::{CacheConfig, KeyLocks, TtlCache};

/// How long jobs wait when StockX refuses our credentials before they are tried again.
const CREDENTIALS_BACKOFF: Duration = Duration::from_secs(300);
/// How long jobs wait after a block or a 429 that came without a `Retry-After`.
const THROTTLED_BACKOFF: Duration = Duration::from_secs(30);

/// The real job handler.
pub struct Enricher {
    pool: PgPool,
    stockx: Option<StockxClient>,
    currency: String,
    health: Arc<Health>,
    /// One lookup per key at a time (SKU, product ID): the rest wait and reuse its answer.
    key_locks: KeyLocks,
    cache_config: CacheConfig,
    variants: TtlCache<Arc<Vec<Variant>>>,
    market: TtlCache<Arc<Vec<MarketData>>>,
    /// The seller's order lists, read while a backlog of order jobs waits.
    bulk: bulk::BulkOrders,
}

/// What one job changed, for `sync-order` and the logs.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct JobReport {
    pub outcome: String,
    pub changes: Vec<String>,
    pub warnings: Vec<String>,
}

/// A job's failure, sorted for the queue.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    #[error(transparent)]
    Stockx(#[from] StockxError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("the job panicked: {0}")]
    Panic(String),
    /// Another job is reading the order list that should hold this order.
    #[error("another job is reading the StockX order list that should hold this order; next look in {} s", .delay.as_secs())]
    WaitForList { delay: Duration },
}

impl EnrichError {
    /// StockX cannot be asked right now, whichever row: refused credentials, a bot-protection
    /// block, 429s that outlasted the client's own retries, or the daily request budget spent.
    /// The job waits; it did not fail.
    pub fn postpones(&self) -> bool {
        match self {
            EnrichError::WaitForList { .. } => true,
            EnrichError::Stockx(e) => {
                e.is_credentials_refused()
                    || e.is_blocked()
                    || matches!(
                        e,
                        StockxError::RateLimited { .. } | StockxError::BudgetExhausted { .. }
                    )
            }
            _ => false,
        }
    }

    /// Whether another attempt may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            EnrichError::Stockx(e) => e.is_transient(),
            EnrichError::Db(e) => !is_data_error(e),
            EnrichError::Panic(_) => false,
            EnrichError::WaitForList { .. } => true,
        }
    }

    /// Whether the order gives up (is marked `failed`) after this error on an attempt that is
    /// (`last_attempt`) or is not its last. A database outage on the last attempt leaves the
    /// order `pending`: the next worker start queues it again.
    fn gives_up_on_the_order(&self, last_attempt: bool) -> bool {
        if self.postpones() {
            return false;
        }
        match self {
            EnrichError::Stockx(_) => last_attempt || !self.is_transient(),
            EnrichError::Db(_) | EnrichError::Panic(_) | EnrichError::WaitForList { .. } => {
                !self.is_transient()
            }
        }
    }
}

impl Enricher {
    /// The enricher the settings describe: with a StockX client when every credential is set.
    pub fn from_settings(
        pool: PgPool,
        settings: &crate::config::Settings,
        health: Arc<Health>,
    ) -> Result<Enricher, StockxError> {
        let client = stockx::client_from_settings(settings)?;
        Ok(
            Enricher::new(pool, client, settings.stockx.currency.clone(), health)
                .with_cache(settings.stockx.cache_config())
                .with_bulk_orders_threshold(settings.stockx.bulk_orders_threshold),
        )
    }

    /// Replaces the cache lifetimes and sizes (the defaults of [`CacheConfig`] otherwise).
    pub fn with_cache(mut self, config: CacheConfig) -> Enricher {
        self.variants = TtlCache::new(config.variants_ttl, config.products);
        self.market = TtlCache::new(config.market_data_ttl, config.products);
        self.cache_config = config;
        self
    }

    /// From how many open order jobs orders are read from the seller's lists (0: never).
    pub fn with_bulk_orders_threshold(mut self, threshold: usize) -> Enricher {
        let rate = self
            .stockx
            .as_ref()
            .map_or(1.0, StockxClient::requests_per_second);
        self.bulk = bulk::BulkOrders::new(threshold, rate);
        self
    }

    /// The StockX client (shared rate limit and budget), for other users such as the market
    /// refresh.
    pub fn stockx_client(&self) -> Option<StockxClient> {
        self.stockx.clone()
    }

    /// Whether jobs are enriched from StockX (false: they are only validated).
    pub fn has_stockx(&self) -> bool {
        self.stockx.is_some()
    }

    pub fn new(
        pool: PgPool,
        stockx: Option<StockxClient>,
        currency: String,
        health: Arc<Health>,
    ) -> Enricher {
        Enricher {
            pool,
            stockx,
            currency,
            health,
            key_locks: KeyLocks::default(),
            cache_config: CacheConfig::default(),
            variants: TtlCache::new(
                CacheConfig::default().variants_ttl,
                CacheConfig::default().products,
            ),
            market: TtlCache::new(
                CacheConfig::default().market_data_ttl,
                CacheConfig::default().products,
            ),
            bulk: bulk::BulkOrders::new(
                crate::config::StockxSettings::default().bulk_orders_threshold,
                crate::config::StockxSettings::default().requests_per_second,
            ),
        }
    }

    /// Runs one job and says what it did. A panic inside is returned as an error (the caller,
    /// a worker or `sync-order`, goes on); an order whose job gives up is marked `failed`.
    pub async fn run_job(&self, job: &Job) -> Result<JobReport, EnrichError> {
        let last_attempt = job.attempt >= job.max_attempts;
        let run = async {
            match job.kind {
                JobKind::Order => self.enrich_order(job.entity_id).await,
                JobKind::Inventory => self.enrich_inventory(job.entity_id).await,
                // Not an enrichment: `notion::writeback` runs these (see `app`).
                JobKind::NotionWriteback => Ok(JobReport {
                    outcome: "skipped".into(),
                    ..JobReport::default()
                }),
            }
        };
        let result = match AssertUnwindSafe(run).catch_unwind().await {
            Ok(result) => result,
            Err(payload) => Err(EnrichError::Panic(panic_message(payload.as_ref()))),
        };
        if let Err(error) = &result {
            if job.kind == JobKind::Order && error.gives_up_on_the_order(last_attempt) {
                let reason = error.to_string();
                if let Err(e) = sales::mark_order_failed(&self.pool, job.entity_id, &reason).await {
                    tracing::warn!(error = %e, "could not mark the order failed");
                }
            }
        }
        result
    }

    async fn enrich_order(&self, order_id: Uuid) -> Result<JobReport, EnrichError> {
        let Some(row) = sales::load_order(&self.pool, order_id).await? else {
            return Ok(gone("order"));
        };
        // StockX first, with no transaction open: the call may wait for the rate limiter, a
        // Retry-After or a slow answer, and a connection idle in transaction meanwhile would
        // hold locks and a pool slot, and turn a killed connection into a retry of work done.
        let answer = match &self.stockx {
            None => None,
            Some(client) => match self.find_order(client, &row).await? {
                Ok(answer) => {
                    self.clear_blocked();
                    Some(answer)
                }
                Err(error) => {
                    self.note_credentials(&error);
                    return Err(error.into());
                }
            },
        };
        retry_on_lock_conflict(|| self.write_order(&row, answer.as_ref())).await
    }

    /// The order as StockX knows it (None: StockX does not know it): from the seller's order
    /// lists while a backlog is reconciled in bulk ([`bulk`]), else by one call. The outer
    /// error defers the job while another job reads the list that should hold its order.
    async fn find_order(
        &self,
        client: &StockxClient,
        row: &sales::OrderRow,
    ) -> Result<Result<Option<DetailedOrder>, StockxError>, EnrichError> {
        Ok(match self.bulk.find(client, &self.pool, row).await {
            Ok(bulk::BulkAnswer::Found(order)) => Ok(Some(*order)),
            Ok(bulk::BulkAnswer::Wait(delay)) => return Err(EnrichError::WaitForList { delay }),
            Ok(bulk::BulkAnswer::AskAlone) => client.order(&row.order_number).await,
            Err(e) => Err(e),
        })
    }

    /// Writes what StockX said of the order (`None`: StockX was not asked) and the findings,
    /// in one transaction.
    async fn write_order(
        &self,
        row: &sales::OrderRow,
        answer: Option<&Option<DetailedOrder>>,
    ) -> Result<JobReport, EnrichError> {
        let mut report = JobReport::default();
        let mut findings = validate::check_sale(&row.facts);
        let mut checked: Vec<Rule> = validate::SALE_RULES.to_vec();
        let mut tx = self.pool.begin().await?;
        match answer {
            None => report.outcome = "validated".into(),
            Some(Some(order)) => {
                store_order(&mut tx, row, order, &mut report).await?;
                let payout = order.payout.as_ref();
                let money = validate::StockxMoney {
                    sale_price: payout.and_then(|p| p.sale_price).or(order.amount),
                    order_currency: order.currency_code.as_deref(),
                    total_payout: payout.and_then(|p| p.total_payout),
                    payout_currency: payout.and_then(|p| p.currency_code.as_deref()),
                };
                let payout_check =
                    validate::check_payout(row.facts.net_proceeds, &row.currency, &money);
                let item_check = check_order_item(&mut tx, row.id).await?;
                for check in [payout_check, item_check] {
                    checked.extend(check.rules);
                    findings.extend(check.findings);
                    report.changes.extend(check.notes);
                }
                report.outcome = "enriched".into();
            }
            Some(None) => {
                sales::mark_order_not_found(&mut tx, row.id).await?;
                report
                    .changes
                    .push("StockX does not know this order".into());
                report.outcome = "not_found".into();
            }
        }
        // After the order's own write, so that the variant StockX's order gave is known.
        let outliers = outliers::check_order(&mut tx, row.id).await?;
        checked.extend(outliers.checked);
        findings.extend(outliers.findings);
        let subject = Subject {
            entity_type: "order",
            entity_id: row.id,
            order_number: Some(&row.order_number),
        };
        let new = record_findings(&mut tx, subject, &checked, &findings).await?;
        tx.commit().await?;
        count_new_findings(&new);
        report.warnings = findings.iter().map(describe).collect();
        Ok(report)
    }

    async fn enrich_inventory(&self, inventory_id: Uuid) -> Result<JobReport, EnrichError> {
        let Some(item) = sales::load_inventory(&self.pool, inventory_id).await? else {
            return Ok(gone("inventory item"));
        };
        let mut report = JobReport {
            outcome: "validated".into(),
            ..JobReport::default()
        };
        let mut inventory_findings: Vec<Finding> = Vec::new();
        let mut inventory_checked: Vec<Rule> = Vec::new();
        let mut variant_id: Option<String> = None;
        let mut market: Option<(String, Arc<Vec<MarketData>>)> = None;

        if let Some(client) = &self.stockx {
            let product_id = match self.resolve_product(client, &item).await {
                Ok(id) => id,
                Err(error) => {
                    self.note_credentials(&error);
                    return Err(error.into());
                }
            };
            self.clear_blocked();
            inventory_checked.push(Rule::StockxProductNotFound);
            match product_id {
                None => {
                    inventory_findings.push(Finding {
                        rule: Rule::StockxProductNotFound,
                        message: format!("StockX has no product with style ID {}", item.sku),
                        details: serde_json::json!({"sku": item.sku}),
                    });
                    report.outcome = "not_found".into();
                }
                Some(product_id) => {
                    let mut variants = self.variants_of(client, &product_id, None).await?;
                    let mut matched = stockx::match_variant(&variants, &item.size, &item.region);
                    if matched.is_none() {
                        // StockX may have added the size since: ask again unless the copy is new.
                        let recheck = Some(self.cache_config.variant_recheck);
                        variants = self.variants_of(client, &product_id, recheck).await?;
                        matched = stockx::match_variant(&variants, &item.size, &item.region);
                    }
                    inventory_checked.push(Rule::StockxVariantNotFound);
                    match matched {
                        Some(variant) => {
                            variant_id = Some(variant.variant_id.clone());
                            market = Some((
                                product_id.clone(),
                                self.market_data_of(client, &product_id).await?,
                            ));
                            report.outcome = "enriched".into();
                        }
                        None => {
                            inventory_findings.push(Finding {
                                rule: Rule::StockxVariantNotFound,
                                message: format!(
                                    "StockX product {} has no size {} ({})",
                                    item.sku, item.size, item.region
                                ),
                                details: serde_json::json!({"sku": item.sku, "size": item.size,
                                    "region": item.region, "stockx_product_id": product_id}),
                            });
                            report.outcome = "not_found".into();
                        }
                    }
                }
            }
        }

        let found = InventoryFindings {
            variant_id,
            market,
            checked: inventory_checked,
            findings: inventory_findings,
        };
        retry_on_lock_conflict(|| self.write_inventory(&item, inventory_id, &found, report.clone()))
            .await
    }

    /// Writes what StockX said of an inventory item and the findings (its own and its order's),
    /// in one transaction.
    async fn write_inventory(
        &self,
        item: &InventoryRow,
        inventory_id: Uuid,
        found: &InventoryFindings,
        mut report: JobReport,
    ) -> Result<JobReport, EnrichError> {
        let mut tx = self.pool.begin().await?;
        if let Some(variant_id) = &found.variant_id {
            let changed =
                sales::set_variant_id(&mut tx, inventory_id, variant_id, VariantWrite::Replace)
                    .await?;
            report.note_id(changed, "stockx_variant_id", variant_id);
            if let Some((product_id, data)) = &found.market {
                if let Some(md) = data.iter().find(|m| &m.variant_id == variant_id) {
                    sales::store_market_data(
                        &mut tx,
                        item.product_id,
                        product_id,
                        std::slice::from_ref(md),
                        &self.currency,
                    )
                    .await?;
                    report.changes.push(format!(
                        "market data {}: lowest ask {}, highest bid {}",
                        md.currency_code.as_deref().unwrap_or(&self.currency),
                        show(md.lowest_ask_amount),
                        show(md.highest_bid_amount)
                    ));
                }
            }
        }
        let subject = Subject {
            entity_type: "inventory",
            entity_id: inventory_id,
            order_number: item.order_number.as_deref(),
        };
        let mut new = record_findings(&mut tx, subject, &found.checked, &found.findings).await?;
        let mut all_findings = found.findings.clone();
        // The purchase price and date are part of the sale's rules: check the order again.
        // So is the catalog's match of the SKU and size, against what StockX's order sold, and
        // the purchase price's place among the seller's own.
        if let Some(order) = sales::load_order_for_inventory(&mut tx, inventory_id).await? {
            let mut findings = validate::check_sale(&order.facts);
            let mut checked = validate::SALE_RULES.to_vec();
            let item_check = check_order_item(&mut tx, order.id).await?;
            checked.extend(item_check.rules);
            findings.extend(item_check.findings);
            let outliers = outliers::check_order(&mut tx, order.id).await?;
            checked.extend(outliers.checked);
            findings.extend(outliers.findings);
            let subject = Subject {
                entity_type: "order",
                entity_id: order.id,
                order_number: Some(&order.order_number),
            };
            new.extend(record_findings(&mut tx, subject, &checked, &findings).await?);
            all_findings.extend(findings);
        }
        tx.commit().await?;
        count_new_findings(&new);
        report.warnings = all_findings.iter().map(describe).collect();
        Ok(report)
    }

    /// SKU → StockX product ID, asking StockX once per SKU. A product whose ID came from an
    /// order before anyone asked the catalog gets the catalog's details by that ID (one call,
    /// as the search would have cost), so brand and retail price never stay empty.
    async fn resolve_product(
        &self,
        client: &StockxClient,
        item: &InventoryRow,
    ) -> Result<Option<String>, StockxError> {
        if item.lookup.is_not_found() {
            return Ok(None);
        }
        if let (Some(id), true) = (&item.lookup.stockx_product_id, item.lookup.catalog_fetched) {
            return Ok(Some(id.clone()));
        }
        let _guard = self.key_locks.lock(&format!("sku:{}", item.sku)).await;
        // Another job may have resolved it while we waited.
        let known = sales::product_lookup(&self.pool, item.product_id)
            .await
            .map_err(|e| StockxError::Internal(e.to_string()))?;
        let product = match known {
            Some(lookup) if lookup.is_not_found() => return Ok(None),
            Some(ProductLookup {
                stockx_product_id: Some(id),
                catalog_fetched,
                ..
            }) => {
                if catalog_fetched {
                    return Ok(Some(id));
                }
                match client.product(&id).await? {
                    Some(product) => Some(product),
                    // The order's product ID is gone from the catalog: ask by SKU, and keep
                    // the order's ID when the search knows nothing either.
                    None => match client.search_product_by_sku(&item.sku).await? {
                        Some(product) => Some(product),
                        None => return Ok(Some(id)),
                    },
                }
            }
            _ => client.search_product_by_sku(&item.sku).await?,
        };
        sales::store_product(&self.pool, item.product_id, product.as_ref())
            .await
            .map_err(|e| StockxError::Internal(e.to_string()))?;
        Ok(product.map(|p| p.product_id))
    }

    /// The variants of a product, from the cache unless it has none younger than
    /// `younger_than` (the cache's own lifetime when None).
    async fn variants_of(
        &self,
        client: &StockxClient,
        product_id: &str,
        younger_than: Option<Duration>,
    ) -> Result<Arc<Vec<Variant>>, StockxError> {
        let cached = || {
            self.variants
                .get(product_id, Instant::now())
                .filter(|(_, age)| younger_than.is_none_or(|limit| *age < limit))
                .map(|(v, _)| v)
        };
        if let Some(v) = cached() {
            return Ok(v);
        }
        let _guard = self.key_locks.lock(&format!("variants:{product_id}")).await;
        if let Some(v) = cached() {
            return Ok(v);
        }
        let variants = Arc::new(client.product_variants(product_id).await?);
        self.variants
            .insert(product_id, variants.clone(), Instant::now());
        Ok(variants)
    }

    async fn market_data_of(
        &self,
        client: &StockxClient,
        product_id: &str,
    ) -> Result<Arc<Vec<MarketData>>, StockxError> {
        let cached = || self.market.get(product_id, Instant::now()).map(|(d, _)| d);
        if let Some(data) = cached() {
            return Ok(data);
        }
        let _guard = self.key_locks.lock(&format!("market:{product_id}")).await;
        if let Some(data) = cached() {
            return Ok(data);
        }
        let data = Arc::new(
            client
                .product_market_data(product_id, &self.currency)
                .await?,
        );
        self.market.insert(product_id, data.clone(), Instant::now());
        Ok(data)
    }

    /// Shows in `/readyz` why no StockX call can succeed now (refused credentials or a block).
    fn note_credentials(&self, error: &StockxError) {
        if error.is_account_wide() {
            *self.health.blocked_reason.lock().expect("lock") = Some(error.to_string());
        }
    }

    fn clear_blocked(&self) {
        let mut reason = self.health.blocked_reason.lock().expect("lock");
        if reason.is_some() {
            *reason = None;
        }
    }
}

impl JobHandler for Enricher {
    fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, JobResult> {
        Box::pin(async move {
            match self.run_job(job).await {
                Ok(report) => {
                    if !report.warnings.is_empty() {
                        tracing::info!(warnings = ?report.warnings, "validation findings");
                    }
                    JobResult::Completed(outcome_label(&report.outcome))
                }
                Err(error) => job_result(error),
            }
        })
    }
}

/// What the StockX calls of an inventory job found, for its write (which may run twice).
struct InventoryFindings {
    variant_id: Option<String>,
    market: Option<(String, Arc<Vec<MarketData>>)>,
    checked: Vec<Rule>,
    findings: Vec<Finding>,
}

/// Write attempts of one job after a deadlock or a serialization failure.
const LOCK_CONFLICT_RETRIES: u32 = 5;

/// Runs a job's write again when PostgreSQL chose it as a deadlock's victim (or refused it as
/// a serialization failure). Jobs of one product write overlapping rows through the entry
/// table's refresh triggers (the product's name fans out to every sale of it), so concurrent
/// jobs can meet in a lock cycle. Retrying here, with StockX's answer in hand, costs no second
/// call; failing the job instead would ask StockX again on its next attempt.
async fn retry_on_lock_conflict<F, Fut>(mut write: F) -> Result<JobReport, EnrichError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<JobReport, EnrichError>>,
{
    let mut conflicts = 0;
    loop {
        match write().await {
            Err(EnrichError::Db(e))
                if is_lock_conflict(&e) && conflicts < LOCK_CONFLICT_RETRIES =>
            {
                conflicts += 1;
                tracing::debug!(error = %e, conflicts, "write lost a lock conflict; writing again");
                // A short, growing pause lets the other transaction finish first.
                tokio::time::sleep(Duration::from_millis(5 * u64::from(conflicts))).await;
            }
            other => return other,
        }
    }
}

/// A deadlock victim (40P01) or a serialization failure (40001): the same write succeeds
/// when run again.
fn is_lock_conflict(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40P01" | "40001")))
}

/// How the queue treats a job's error: wait without spending an attempt, retry, or give up.
fn job_result(error: EnrichError) -> JobResult {
    if let EnrichError::WaitForList { delay } = error {
        return JobResult::Deferred {
            reason: error.to_string(),
            delay,
        };
    }
    if error.postpones() {
        let delay = match &error {
            EnrichError::Stockx(e) if e.is_credentials_refused() => CREDENTIALS_BACKOFF,
            EnrichError::Stockx(e) => e.retry_after().unwrap_or(THROTTLED_BACKOFF),
            _ => THROTTLED_BACKOFF,
        };
        return JobResult::Postponed {
            reason: error.to_string(),
            delay,
        };
    }
    JobResult::Failed {
        transient: error.is_transient(),
        retry_after: match &error {
            EnrichError::Stockx(e) => e.retry_after(),
            _ => None,
        },
        message: error.to_string(),
    }
}

fn outcome_label(outcome: &str) -> &'static str {
    match outcome {
        "enriched" => "enriched",
        "not_found" => "not_found",
        _ => "validated",
    }
}

impl JobReport {
    /// Notes a StockX ID written to a row, when the write changed it.
    fn note_id(&mut self, changed: bool, column: &str, id: &str) {
        if changed {
            self.changes.push(format!("{column} = {id}"));
        }
    }
}

/// Stores what StockX says of an order, and fills the product and variant IDs it carries
/// where the catalog has not given them yet: the product only when the order's style ID names
/// the recorded SKU (an order of another product must not become the SKU's catalog match, or
/// the mismatch could never be seen), the variant only onto that same product.
async fn store_order(
    conn: &mut sqlx::PgConnection,
    row: &sales::OrderRow,
    order: &stockx::DetailedOrder,
    report: &mut JobReport,
) -> Result<(), sqlx::Error> {
    // Rows in the order every job takes them, so that concurrent jobs never wait on each other
    // in a cycle: the product (its name fans out to the entry row of every sale of it), then
    // the inventory item (the inventory job of the same sale, often running at the same time,
    // writes it before the entry row), and only then the order, whose triggers lock the
    // sale's entry row. The read below takes no row locks.
    let Some(item) = sales::order_item_facts(conn, row.id).await? else {
        return Ok(());
    };
    let mut catalog_product = item.catalog_product_id.clone();
    let mut product_note = None;
    if let Some(product) = &order.product {
        // The order's product becomes the SKU's match only when its style ID names the SKU:
        // a Dunk sold for a Samba entered must stay visible as `order_product_mismatch`.
        let names_the_sku = product
            .style_id
            .as_deref()
            .is_some_and(|style| stockx::variants::match_style_id(&item.sku, style).is_some());
        if names_the_sku && catalog_product.is_none() {
            let filled = sales::fill_product_id(
                conn,
                row.product_id,
                &product.product_id,
                product.product_name.as_deref(),
            )
            .await?;
            product_note = Some((filled, product.product_id.as_str()));
            if filled {
                catalog_product = Some(product.product_id.clone());
            }
        }
    }
    let same_product = order
        .product
        .as_ref()
        .is_some_and(|p| catalog_product.as_deref() == Some(p.product_id.as_str()));
    let mut variant_note = None;
    if let (Some(variant), true) = (&order.variant, same_product) {
        let filled = sales::set_variant_id(
            conn,
            row.inventory_id,
            &variant.variant_id,
            VariantWrite::IfUnknown,
        )
        .await?;
        variant_note = Some((filled, variant.variant_id.as_str()));
    }
    sales::store_stockx_order(conn, row.id, order).await?;
    let payout = order.payout.as_ref();
    let payout_text = match (
        payout.and_then(|p| p.total_payout),
        payout.and_then(|p| p.currency_code.as_deref()),
    ) {
        (Some(amount), Some(currency)) => format!("{amount} {currency}"),
        (Some(amount), None) => format!("{amount} (StockX names no currency)"),
        (None, _) => "-".to_string(),
    };
    let order_currency = match order.currency_code.as_deref() {
        Some(currency) => format!(", order in {currency}"),
        None => String::new(),
    };
    report.changes.push(format!(
        "StockX status {}, payout {payout_text}{order_currency}",
        order.status
    ));
    if let Some((filled, id)) = product_note {
        report.note_id(filled, "stockx_product_id", id);
    }
    if let Some((filled, id)) = variant_note {
        report.note_id(filled, "stockx_variant_id", id);
    }
    Ok(())
}

/// StockX's order against the catalog's match of the recorded SKU and size, read as they are
/// now in the job's transaction (whichever of the order and inventory jobs runs second sees
/// both).
async fn check_order_item(
    conn: &mut sqlx::PgConnection,
    order_id: Uuid,
) -> Result<validate::Checked, sqlx::Error> {
    Ok(match sales::order_item_facts(conn, order_id).await? {
        Some(item) => validate::check_order_item(&item),
        None => validate::Checked::default(),
    })
}

fn gone(what: &str) -> JobReport {
    JobReport {
        outcome: "not_found".into(),
        changes: vec![format!("the {what} no longer exists")],
        warnings: Vec::new(),
    }
}

fn describe(finding: &Finding) -> String {
    format!("{}: {}", finding.rule.code(), finding.message)
}

fn show(amount: Option<Decimal>) -> String {
    amount.map_or_else(|| "-".to_string(), |a| a.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stockx(e: StockxError) -> JobResult {
        job_result(EnrichError::Stockx(e))
    }

    #[test]
    fn blocks_exhausted_429s_and_a_spent_budget_wait_without_spending_an_attempt() {
        let wait = Duration::from_secs(42);
        let blocked = stockx(StockxError::Blocked {
            status: 403,
            vendor: "Cloudflare",
            endpoint: "order",
            retry_after: wait,
        });
        let throttled = stockx(StockxError::RateLimited { retry_after: wait });
        let spent = stockx(StockxError::BudgetExhausted { retry_after: wait });
        for result in [blocked, throttled, spent] {
            match result {
                JobResult::Postponed { delay, .. } => assert_eq!(delay, wait),
                other => panic!("expected a postponement, got {other:?}"),
            }
        }
        let refused = stockx(StockxError::CredentialsRefused("401".into()));
        assert!(
            matches!(refused, JobResult::Postponed { delay, .. } if delay == CREDENTIALS_BACKOFF)
        );
    }

    #[test]
    fn waiting_for_an_order_list_defers_without_giving_up_on_the_order() {
        let wait = EnrichError::WaitForList {
            delay: Duration::from_secs(7),
        };
        assert!(wait.postpones() && !wait.gives_up_on_the_order(true));
        match job_result(wait) {
            JobResult::Deferred { delay, reason } => {
                assert_eq!(delay, Duration::from_secs(7));
                assert!(reason.contains("order list"), "{reason}");
            }
            other => panic!("expected a deferral, got {other:?}"),
        }
    }

    #[test]
    fn data_errors_and_panics_are_permanent_outages_are_not() {
        let decode = EnrichError::Db(sqlx::Error::ColumnDecode {
            index: "net_proceeds".into(),
            source: "NaN".into(),
        });
        assert!(!decode.is_transient());
        assert!(decode.gives_up_on_the_order(false));
        let panic = EnrichError::Panic("boom".into());
        assert!(!panic.is_transient());
        assert!(panic.gives_up_on_the_order(false));
        let outage = EnrichError::Db(sqlx::Error::PoolTimedOut);
        assert!(outage.is_transient());
        assert!(!outage.gives_up_on_the_order(true), "stays pending");
        let server = EnrichError::Stockx(StockxError::Server {
            status: 503,
            endpoint: "order",
            message: String::new(),
        });
        assert!(!server.gives_up_on_the_order(false));
        assert!(server.gives_up_on_the_order(true));
        assert!(matches!(
            job_result(decode),
            JobResult::Failed {
                transient: false,
                ..
            }
        ));
    }
}
