//! What a job does to a row: look the sale up on StockX, store what StockX says, and check it.
//!
//! - **order job** (`platforms.stockx_orders`): fetch the seller's order by number; store its
//!   status, sale price, payout, adjustments and currency; take product and variant IDs from it
//!   when the catalog has not given them yet; compare StockX's payout with the recorded net
//!   proceeds; run the sale rules. An order StockX does not know is `not_found`, not a retry.
//! - **inventory job** (`products.inventory`): resolve the SKU to a StockX product (once per SKU:
//!   the answer is stored on `products.products`, and concurrent jobs for one SKU wait for one
//!   lookup), the size to a variant (variants fetched once per product), and store the variant's
//!   market data; then re-run the sale rules of the order it belongs to, since its purchase
//!   price and date are part of them.
//!
//! Without StockX credentials a job only validates, and orders stay `pending` until a worker
//! with credentials runs (it enqueues what is still pending at start). Every job's writes are one
//! transaction and idempotent: running a job twice leaves the same rows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::queue::{Job, JobKind};
use crate::stockx::{self, MarketData, Product, StockxClient, StockxError, Variant};
use crate::validate::store::{count_new_findings, record_findings, Subject};
use crate::validate::{self, Finding, Rule, SaleFacts};
use crate::worker::{Health, JobHandler, JobResult};

/// How long market data fetched for one product is reused for its other sizes.
const MARKET_DATA_TTL: Duration = Duration::from_secs(600);
/// How long jobs wait when StockX refuses our credentials before they are tried again.
const CREDENTIALS_BACKOFF: Duration = Duration::from_secs(300);

/// Market data of one product and when it was fetched.
type FetchedMarketData = (Instant, Arc<Vec<MarketData>>);

/// The real job handler.
pub struct Enricher {
    pool: PgPool,
    stockx: Option<StockxClient>,
    currency: String,
    health: Arc<Health>,
    /// One lookup per key at a time (SKU, product ID): the rest wait and reuse its answer.
    key_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    variants: Mutex<HashMap<String, Arc<Vec<Variant>>>>,
    market: Mutex<HashMap<String, FetchedMarketData>>,
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
}

impl Enricher {
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
            key_locks: Mutex::new(HashMap::new()),
            variants: Mutex::new(HashMap::new()),
            market: Mutex::new(HashMap::new()),
        }
    }

    /// Runs one job and says what it did.
    pub async fn run_job(&self, job: &Job) -> Result<JobReport, EnrichError> {
        let last_attempt = job.attempt >= job.max_attempts;
        match job.kind {
            JobKind::Order => self.enrich_order(job.entity_id, last_attempt).await,
            JobKind::Inventory => self.enrich_inventory(job.entity_id).await,
        }
    }

    async fn enrich_order(
        &self,
        order_id: Uuid,
        last_attempt: bool,
    ) -> Result<JobReport, EnrichError> {
        let Some(row) = load_order(&self.pool, order_id).await? else {
            return Ok(gone("order"));
        };
        let mut report = JobReport::default();
        let mut findings = validate::check_sale(&row.facts);
        let mut checked: Vec<Rule> = validate::SALE_RULES.to_vec();

        let mut tx = self.pool.begin().await?;
        match &self.stockx {
            None => {
                report.outcome = "validated".into();
            }
            Some(client) => match client.order(&row.order_number).await {
                Ok(Some(order)) => {
                    self.clear_blocked();
                    store_order(&mut tx, &row, &order, &mut report).await?;
                    if let Some(payout) = &order.payout {
                        if let (Some(amount), Some(currency)) =
                            (payout.total_payout, payout.currency_code.as_deref())
                        {
                            checked.push(Rule::PayoutMismatch);
                            findings.extend(validate::check_payout(
                                row.facts.net_proceeds,
                                &row.currency,
                                amount,
                                currency,
                            ));
                        }
                    }
                    report.outcome = "enriched".into();
                }
                Ok(None) => {
                    sqlx::query(
                        "UPDATE platforms.stockx_orders
                         SET enrichment_status = 'not_found', enrichment_error = NULL,
                             enriched_at = now()
                         WHERE id = $1",
                    )
                    .bind(order_id)
                    .execute(&mut *tx)
                    .await?;
                    report
                        .changes
                        .push("StockX does not know this order".into());
                    report.outcome = "not_found".into();
                }
                Err(error) => {
                    self.note_credentials(&error);
                    // Refused credentials are ours to fix, not the order's fault: it stays pending.
                    if !error.is_credentials_refused() && (last_attempt || !error.is_transient()) {
                        mark_order_failed(&self.pool, order_id, &error.to_string()).await?;
                    }
                    return Err(error.into());
                }
            },
        }
        let subject = Subject {
            entity_type: "order",
            entity_id: order_id,
            order_number: Some(&row.order_number),
        };
        let new = record_findings(&mut tx, subject, &checked, &findings).await?;
        tx.commit().await?;
        count_new_findings(&new);
        report.warnings = findings.iter().map(describe).collect();
        Ok(report)
    }

    async fn enrich_inventory(&self, inventory_id: Uuid) -> Result<JobReport, EnrichError> {
        let Some(item) = load_inventory(&self.pool, inventory_id).await? else {
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
                    let variants = self.variants_of(client, &product_id).await?;
                    inventory_checked.push(Rule::StockxVariantNotFound);
                    match stockx::match_variant(&variants, &item.size, &item.region) {
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

        let mut tx = self.pool.begin().await?;
        if let Some(variant_id) = &variant_id {
            let changed = sqlx::query(
                "UPDATE products.inventory SET stockx_variant_id = $2
                 WHERE id = $1 AND stockx_variant_id IS DISTINCT FROM $2",
            )
            .bind(inventory_id)
            .bind(variant_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed > 0 {
                report
                    .changes
                    .push(format!("stockx_variant_id = {variant_id}"));
            }
            if let Some((product_id, data)) = &market {
                if let Some(md) = data.iter().find(|m| &m.variant_id == variant_id) {
                    store_market_data(&mut tx, item.product_id, product_id, md).await?;
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
        let mut new =
            record_findings(&mut tx, subject, &inventory_checked, &inventory_findings).await?;
        let mut all_findings = inventory_findings;
        // The purchase price and date are part of the sale's rules: check the order again.
        if let Some(order) = load_order_for_inventory(&mut tx, inventory_id).await? {
            let findings = validate::check_sale(&order.facts);
            let subject = Subject {
                entity_type: "order",
                entity_id: order.id,
                order_number: Some(&order.order_number),
            };
            new.extend(record_findings(&mut tx, subject, &validate::SALE_RULES, &findings).await?);
            all_findings.extend(findings);
        }
        tx.commit().await?;
        count_new_findings(&new);
        report.warnings = all_findings.iter().map(describe).collect();
        Ok(report)
    }

    /// SKU → StockX product ID, asking StockX once per SKU.
    async fn resolve_product(
        &self,
        client: &StockxClient,
        item: &InventoryRow,
    ) -> Result<Option<String>, StockxError> {
        if item.lookup_status.as_deref() == Some("not_found") {
            return Ok(None);
        }
        if let Some(id) = &item.stockx_product_id {
            return Ok(Some(id.clone()));
        }
        let lock = self.key_lock(&format!("sku:{}", item.sku));
        let _guard = lock.lock().await;
        // Another job may have resolved it while we waited.
        let known: Option<(Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT stockx_product_id, stockx_lookup_status FROM products.products WHERE id = $1",
        )
        .bind(item.product_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StockxError::Internal(e.to_string()))?;
        match known {
            Some((Some(id), _)) => return Ok(Some(id)),
            Some((None, Some(status))) if status == "not_found" => return Ok(None),
            _ => {}
        }
        let product = client.search_product_by_sku(&item.sku).await?;
        store_product(&self.pool, item.product_id, product.as_ref())
            .await
            .map_err(|e| StockxError::Internal(e.to_string()))?;
        Ok(product.map(|p| p.product_id))
    }

    async fn variants_of(
        &self,
        client: &StockxClient,
        product_id: &str,
    ) -> Result<Arc<Vec<Variant>>, StockxError> {
        if let Some(v) = self.variants.lock().expect("lock").get(product_id) {
            return Ok(v.clone());
        }
        let lock = self.key_lock(&format!("variants:{product_id}"));
        let _guard = lock.lock().await;
        if let Some(v) = self.variants.lock().expect("lock").get(product_id) {
            return Ok(v.clone());
        }
        let variants = Arc::new(client.product_variants(product_id).await?);
        self.variants
            .lock()
            .expect("lock")
            .insert(product_id.to_string(), variants.clone());
        Ok(variants)
    }

    async fn market_data_of(
        &self,
        client: &StockxClient,
        product_id: &str,
    ) -> Result<Arc<Vec<MarketData>>, StockxError> {
        let fresh = |cache: &HashMap<String, FetchedMarketData>| {
            cache
                .get(product_id)
                .filter(|(at, _)| at.elapsed() < MARKET_DATA_TTL)
                .map(|(_, data)| data.clone())
        };
        if let Some(data) = fresh(&self.market.lock().expect("lock")) {
            return Ok(data);
        }
        let lock = self.key_lock(&format!("market:{product_id}"));
        let _guard = lock.lock().await;
        if let Some(data) = fresh(&self.market.lock().expect("lock")) {
            return Ok(data);
        }
        let data = Arc::new(
            client
                .product_market_data(product_id, &self.currency)
                .await?,
        );
        self.market
            .lock()
            .expect("lock")
            .insert(product_id.to_string(), (Instant::now(), data.clone()));
        Ok(data)
    }

    fn key_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.key_locks
            .lock()
            .expect("lock")
            .entry(key.to_string())
            .or_default()
            .clone()
    }

    fn note_credentials(&self, error: &StockxError) {
        if error.is_credentials_refused() {
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
                Err(EnrichError::Stockx(e)) if e.is_credentials_refused() => JobResult::Postponed {
                    reason: e.to_string(),
                    delay: CREDENTIALS_BACKOFF,
                },
                Err(EnrichError::Stockx(e)) => JobResult::Failed {
                    transient: e.is_transient(),
                    retry_after: e.retry_after(),
                    message: e.to_string(),
                },
                Err(EnrichError::Db(e)) => JobResult::Failed {
                    transient: true,
                    retry_after: None,
                    message: format!("database: {e}"),
                },
            }
        })
    }
}

fn outcome_label(outcome: &str) -> &'static str {
    match outcome {
        "enriched" => "enriched",
        "not_found" => "not_found",
        _ => "validated",
    }
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

/// An order with what its rules need.
pub struct OrderRow {
    pub id: Uuid,
    pub order_number: String,
    pub currency: String,
    pub inventory_id: Uuid,
    pub product_id: Uuid,
    pub facts: SaleFacts,
}

type OrderTuple = (
    Uuid,
    String,
    String,
    Uuid,
    Uuid,
    Decimal,
    Option<time::Date>,
    Option<Decimal>,
    Decimal,
    Option<Decimal>,
    Option<Decimal>,
    time::Date,
    Option<time::Date>,
);

const ORDER_SELECT: &str = "SELECT o.id, o.stockx_order_number, o.currency, i.id, i.product_id,
        i.purchase_price, i.purchase_date, o.sale_price, o.net_proceeds, o.net_profit, o.roi,
        o.sold_at, o.delivered_at
     FROM platforms.stockx_orders o
     JOIN platforms.stockx_listings l ON l.id = o.listing_id
     JOIN products.inventory i ON i.id = l.inventory_id";

fn order_row(t: OrderTuple) -> OrderRow {
    OrderRow {
        id: t.0,
        order_number: t.1,
        currency: t.2,
        inventory_id: t.3,
        product_id: t.4,
        facts: SaleFacts {
            purchase_price: t.5,
            purchase_date: t.6,
            sale_price: t.7,
            net_proceeds: t.8,
            profit: t.9,
            roi: t.10,
            sold_at: t.11,
            delivered_at: t.12,
        },
    }
}

async fn load_order(pool: &PgPool, order_id: Uuid) -> Result<Option<OrderRow>, sqlx::Error> {
    let row: Option<OrderTuple> = sqlx::query_as(&format!("{ORDER_SELECT} WHERE o.id = $1"))
        .bind(order_id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(order_row))
}

async fn load_order_for_inventory(
    conn: &mut PgConnection,
    inventory_id: Uuid,
) -> Result<Option<OrderRow>, sqlx::Error> {
    let row: Option<OrderTuple> = sqlx::query_as(&format!("{ORDER_SELECT} WHERE i.id = $1"))
        .bind(inventory_id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(order_row))
}

/// Finds an order by its StockX number (for `sync-order`).
pub async fn find_order_id(pool: &PgPool, order_number: &str) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM platforms.stockx_orders WHERE stockx_order_number = $1")
        .bind(order_number.trim())
        .fetch_optional(pool)
        .await
}

type InventoryTuple = (
    Uuid,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
);

struct InventoryRow {
    product_id: Uuid,
    sku: String,
    stockx_product_id: Option<String>,
    lookup_status: Option<String>,
    size: String,
    region: String,
    order_number: Option<String>,
}

async fn load_inventory(
    pool: &PgPool,
    inventory_id: Uuid,
) -> Result<Option<InventoryRow>, sqlx::Error> {
    let row: Option<InventoryTuple> = sqlx::query_as(
        "SELECT p.id, p.sku, p.stockx_product_id, p.stockx_lookup_status, s.value, s.region,
                    coalesce(o.stockx_order_number, i.external_ids->>'stockx_order_number')
             FROM products.inventory i
             JOIN products.products p ON p.id = i.product_id
             JOIN products.sizes s ON s.id = i.size_id
             LEFT JOIN platforms.stockx_listings l ON l.inventory_id = i.id
             LEFT JOIN platforms.stockx_orders o ON o.listing_id = l.id
             WHERE i.id = $1",
    )
    .bind(inventory_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| InventoryRow {
        product_id: r.0,
        sku: r.1,
        stockx_product_id: r.2,
        lookup_status: r.3,
        size: r.4,
        region: r.5,
        order_number: r.6,
    }))
}

async fn store_product(
    pool: &PgPool,
    product_id: Uuid,
    product: Option<&Product>,
) -> Result<(), sqlx::Error> {
    match product {
        None => {
            sqlx::query(
                "UPDATE products.products SET stockx_lookup_status = 'not_found' WHERE id = $1",
            )
            .bind(product_id)
            .execute(pool)
            .await?;
        }
        Some(p) => {
            let attrs = p.product_attributes.as_ref();
            sqlx::query(
                "UPDATE products.products
                 SET stockx_product_id = $2, stockx_url_key = $3,
                     name = coalesce($4, name), brand = coalesce($5, brand),
                     colorway = coalesce($6, colorway), retail_price = coalesce($7, retail_price),
                     release_date = coalesce($8, release_date),
                     stockx_lookup_status = 'found', enriched_at = now()
                 WHERE id = $1",
            )
            .bind(product_id)
            .bind(&p.product_id)
            .bind(&p.url_key)
            .bind(&p.title)
            .bind(&p.brand)
            .bind(attrs.and_then(|a| a.colorway.clone()))
            .bind(attrs.and_then(|a| a.retail_price))
            .bind(attrs.and_then(|a| a.release_date))
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

async fn store_order(
    conn: &mut PgConnection,
    row: &OrderRow,
    order: &stockx::DetailedOrder,
    report: &mut JobReport,
) -> Result<(), sqlx::Error> {
    let payout = order.payout.as_ref();
    let adjustments = payout.map(|p| serde_json::to_value(&p.adjustments).unwrap_or_default());
    sqlx::query(
        "UPDATE platforms.stockx_orders
         SET stockx_status = $2, stockx_sale_price = $3, stockx_total_payout = $4,
             stockx_total_adjustments = $5, stockx_adjustments = $6, stockx_currency = $7,
             stockx_product_id = $8, stockx_variant_id = $9,
             enrichment_status = 'enriched', enrichment_error = NULL, enriched_at = now()
         WHERE id = $1",
    )
    .bind(row.id)
    .bind(&order.status)
    .bind(payout.and_then(|p| p.sale_price).or(order.amount))
    .bind(payout.and_then(|p| p.total_payout))
    .bind(payout.and_then(|p| p.total_adjustments))
    .bind(adjustments)
    .bind(
        payout
            .and_then(|p| p.currency_code.clone())
            .or(order.currency_code.clone()),
    )
    .bind(order.product.as_ref().map(|p| p.product_id.clone()))
    .bind(order.variant.as_ref().map(|v| v.variant_id.clone()))
    .execute(&mut *conn)
    .await?;
    report.changes.push(format!(
        "StockX status {}, payout {} {}",
        order.status,
        show(payout.and_then(|p| p.total_payout)),
        payout
            .and_then(|p| p.currency_code.clone())
            .unwrap_or_default()
    ));
    // The order carries the IDs and the title: fill what the catalog has not given yet (the
    // inventory job skips the catalog once the product ID is known, so the title would
    // otherwise stay empty).
    if let Some(product) = &order.product {
        let n = sqlx::query(
            "UPDATE products.products SET stockx_product_id = $2, stockx_lookup_status = 'found',
                    name = coalesce(name, $3)
             WHERE id = $1 AND stockx_product_id IS NULL",
        )
        .bind(row.product_id)
        .bind(&product.product_id)
        .bind(&product.product_name)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if n > 0 {
            report
                .changes
                .push(format!("stockx_product_id = {}", product.product_id));
        }
    }
    if let Some(variant) = &order.variant {
        let n = sqlx::query(
            "UPDATE products.inventory SET stockx_variant_id = $2
             WHERE id = $1 AND stockx_variant_id IS NULL",
        )
        .bind(row.inventory_id)
        .bind(&variant.variant_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if n > 0 {
            report
                .changes
                .push(format!("stockx_variant_id = {}", variant.variant_id));
        }
    }
    Ok(())
}

async fn mark_order_failed(pool: &PgPool, order_id: Uuid, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE platforms.stockx_orders SET enrichment_status = 'failed', enrichment_error = $2
         WHERE id = $1",
    )
    .bind(order_id)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

async fn store_market_data(
    conn: &mut PgConnection,
    product_id: Uuid,
    stockx_product_id: &str,
    md: &MarketData,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO platforms.marketplace_data
             (product_id, stockx_product_id, stockx_variant_id, currency, lowest_ask, highest_bid,
              sell_faster, earn_more, fetched_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())
         ON CONFLICT (stockx_variant_id, currency) DO UPDATE
         SET lowest_ask = EXCLUDED.lowest_ask, highest_bid = EXCLUDED.highest_bid,
             sell_faster = EXCLUDED.sell_faster, earn_more = EXCLUDED.earn_more,
             fetched_at = EXCLUDED.fetched_at",
    )
    .bind(product_id)
    .bind(stockx_product_id)
    .bind(&md.variant_id)
    .bind(md.currency_code.as_deref().unwrap_or("EUR"))
    .bind(md.lowest_ask_amount)
    .bind(md.highest_bid_amount)
    .bind(md.sell_faster_amount)
    .bind(md.earn_more_amount)
    .execute(conn)
    .await?;
    Ok(())
}

/// At start with credentials: orders still pending (entered while no credentials were set, or
/// whose jobs were pruned) get a job again.
pub async fn enqueue_pending(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO integration.enrichment_jobs (kind, entity_id)
         SELECT 'order', o.id FROM platforms.stockx_orders o
         WHERE o.enrichment_status = 'pending'
         UNION ALL
         SELECT 'inventory', i.id FROM products.inventory i
         JOIN products.products p ON p.id = i.product_id
         WHERE i.stockx_variant_id IS NULL AND p.stockx_lookup_status IS NULL
         ON CONFLICT (kind, entity_id) WHERE state IN ('available', 'running', 'retryable')
         DO NOTHING",
    )
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}
