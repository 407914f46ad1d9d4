//! Notion write-back (opt-in, `notion.writeback`): once a sale that came from a Notion page is
//! in the database and its jobs have run, its page shows it. The status property
//! (`notion.status_property`, "Sync Status" by default; a Text or Select property) reads
//! "✅ Synced to Database" or "⚠️ N validation warnings", and each open validation warning gets
//! one comment "⚠️ Data validation warning: ...".
//!
//! The writes are jobs of their own kind (`notion_writeback`) in the job queue: a Notion
//! outage fails the write-back job, which the queue retries with its backoff, and never the
//! import or the enrichment. [`WithWriteback`] wraps the enrichment handler: after an order or
//! inventory job of a sale with a Notion page, it enqueues the sale's write-back (a little
//! later, so the order's and the item's jobs of one import end in one write-back), and it runs
//! the write-back jobs.
//!
//! Never twice: `integration.notion_writeback_pages` holds the status last written to each page
//! (sent again only when it changes) and `integration.notion_writeback_comments` each warning
//! commented (a warning that was resolved and comes back is a new warning, and gets a new
//! comment). The client does not retry server errors itself here: Notion has no idempotency
//! key, so a comment retried blindly after a 5xx could appear twice; the queue's retry re-reads
//! what was recorded first.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use super::backfill::{client_with, notion_config, BackfillError};
use super::client::{
    NotionClient, NotionError, QueryTarget, LEGACY_NOTION_VERSION, NOTION_VERSION,
};
use crate::config::Settings;
use crate::queue::{self, Job, JobHandler, JobKind, JobResult};
use crate::sales;
use crate::validate::store::{open_warnings_of_sale, SaleWarning};

/// The status of a sale without open warnings.
pub const STATUS_SYNCED: &str = "✅ Synced to Database";
/// What each warning's comment starts with.
pub const COMMENT_PREFIX: &str = "⚠️ Data validation warning: ";
/// Notion's limit for one rich text item.
const MAX_TEXT: usize = 2000;
/// Delay of a write-back after a job: the other job of the same import usually ends meanwhile.
const FOLLOW_UP_DELAY: Duration = Duration::from_secs(2);

/// The status text for a sale with `warnings` open validation warnings.
pub fn status_text(warnings: usize) -> String {
    match warnings {
        0 => STATUS_SYNCED.to_string(),
        1 => "⚠️ 1 validation warning".to_string(),
        n => format!("⚠️ {n} validation warnings"),
    }
}

/// The comment for one warning, cut to what Notion accepts.
pub fn comment_text(warning: &SaleWarning) -> String {
    let text = format!("{COMMENT_PREFIX}{}", warning.message);
    if text.chars().count() <= MAX_TEXT {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_TEXT - 1).collect();
    cut.push('…');
    cut
}

#[derive(Debug, thiserror::Error)]
pub enum WritebackError {
    #[error(transparent)]
    Notion(#[from] NotionError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The status property is missing or of a type that cannot hold the text.
    #[error("{0}")]
    Property(String),
}

impl WritebackError {
    /// Worth another attempt later (Notion or the database unavailable, rate limited).
    pub fn is_transient(&self) -> bool {
        match self {
            WritebackError::Db(_) => true,
            WritebackError::Property(_) => false,
            WritebackError::Notion(e) => matches!(
                e,
                NotionError::Server { .. }
                    | NotionError::Transport { .. }
                    | NotionError::RateLimited { .. }
                    | NotionError::Decode { .. }
                    | NotionError::Unexpected { .. }
            ),
        }
    }
}

/// How the status property is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PropertyKind {
    RichText,
    Select,
}

/// Writes statuses and comments to the pages of one Notion database.
pub struct Writeback {
    pool: PgPool,
    client: NotionClient,
    property: String,
    kind: Mutex<Option<PropertyKind>>,
}

impl std::fmt::Debug for Writeback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writeback")
            .field("client", &self.client)
            .field("property", &self.property)
            .finish_non_exhaustive()
    }
}

impl Writeback {
    /// The write-back the settings ask for: None unless `notion.writeback` is on.
    pub fn from_settings(
        settings: &Settings,
        pool: PgPool,
    ) -> Result<Option<Arc<Writeback>>, BackfillError> {
        if !settings.notion.writeback {
            return Ok(None);
        }
        let mut config = notion_config(settings)?;
        // The queue retries; see the module documentation.
        config.max_retries = 0;
        let client = client_with(settings, config)?;
        Ok(Some(Arc::new(Writeback {
            pool,
            client,
            property: settings.notion.status_property.trim().to_string(),
            kind: Mutex::new(None),
        })))
    }

    /// Brings one sale's page up to date. Returns `written` when something was sent,
    /// `unchanged` when the page already shows it all, `skipped` when the sale has no page.
    pub async fn write(&self, order_id: Uuid) -> Result<&'static str, WritebackError> {
        let Some(order) = sales::load_order(&self.pool, order_id).await? else {
            return Ok("skipped");
        };
        let Some(page_id) = page_of_order(&self.pool, &order.order_number).await? else {
            return Ok("skipped");
        };
        let warnings = open_warnings_of_sale(&self.pool, order.id, order.inventory_id).await?;
        let mut sent = false;

        let ids: Vec<i64> = warnings.iter().map(|w| w.id).collect();
        let commented: Vec<i64> = sqlx::query_scalar(
            "SELECT warning_id FROM integration.notion_writeback_comments
             WHERE page_id = $1 AND warning_id = ANY($2)",
        )
        .bind(&page_id)
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        for warning in warnings.iter().filter(|w| !commented.contains(&w.id)) {
            let body = json!({
                "parent": { "page_id": page_id },
                "rich_text": [{ "type": "text", "text": { "content": comment_text(warning) } }],
            });
            self.client
                .request(
                    Method::POST,
                    "/v1/comments",
                    "/v1/comments",
                    NOTION_VERSION,
                    Some(&body),
                )
                .await?;
            sqlx::query(
                "INSERT INTO integration.notion_writeback_comments (page_id, warning_id)
                 VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(&page_id)
            .bind(warning.id)
            .execute(&self.pool)
            .await?;
            sent = true;
        }

        let status = status_text(warnings.len());
        let last: Option<String> = sqlx::query_scalar(
            "SELECT status_text FROM integration.notion_writeback_pages WHERE page_id = $1",
        )
        .bind(&page_id)
        .fetch_optional(&self.pool)
        .await?;
        if last.as_deref() != Some(status.as_str()) {
            let value = match self.property_kind().await? {
                PropertyKind::RichText => {
                    json!({ "rich_text": [{ "type": "text", "text": { "content": status } }] })
                }
                PropertyKind::Select => json!({ "select": { "name": status } }),
            };
            let body = json!({ "properties": { self.property.as_str(): value } });
            let path = format!("/v1/pages/{page_id}");
            self.client
                .request(
                    Method::PATCH,
                    "/v1/pages/{id}",
                    &path,
                    NOTION_VERSION,
                    Some(&body),
                )
                .await?;
            sqlx::query(
                "INSERT INTO integration.notion_writeback_pages (page_id, order_id, status_text)
                 VALUES ($1, $2, $3)
                 ON CONFLICT (page_id) DO UPDATE
                 SET order_id = EXCLUDED.order_id, status_text = EXCLUDED.status_text,
                     written_at = now()",
            )
            .bind(&page_id)
            .bind(order.id)
            .bind(&status)
            .execute(&self.pool)
            .await?;
            sent = true;
        }
        Ok(if sent { "written" } else { "unchanged" })
    }

    /// The status property's type, read once from the database's schema. A missing property
    /// is asked again next time (someone may add it).
    async fn property_kind(&self) -> Result<PropertyKind, WritebackError> {
        if let Some(kind) = *self.kind.lock().expect("lock") {
            return Ok(kind);
        }
        let (template, path, version) = match self.client.resolve_target().await? {
            QueryTarget::DataSource { id } => (
                "/v1/data_sources/{id}",
                format!("/v1/data_sources/{id}"),
                NOTION_VERSION,
            ),
            QueryTarget::LegacyDatabase { id } => (
                "/v1/databases/{id}",
                format!("/v1/databases/{id}"),
                LEGACY_NOTION_VERSION,
            ),
        };
        let schema = self
            .client
            .request(Method::GET, template, &path, version, None)
            .await?;
        let kind = match schema
            .get("properties")
            .and_then(|p| p.get(&self.property))
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str)
        {
            Some("rich_text") => PropertyKind::RichText,
            Some("select") => PropertyKind::Select,
            Some(other) => {
                return Err(WritebackError::Property(format!(
                    "the Notion property {:?} is of type {other}; the sync status needs a Text or Select property (notion.status_property, STOCKX_SYNC_NOTION_STATUS_PROPERTY)",
                    self.property
                )))
            }
            None => {
                return Err(WritebackError::Property(format!(
                    "the Notion database has no property {:?}: add a Text or Select property with that name, or set notion.status_property (STOCKX_SYNC_NOTION_STATUS_PROPERTY)",
                    self.property
                )))
            }
        };
        *self.kind.lock().expect("lock") = Some(kind);
        Ok(kind)
    }

    async fn run_job(&self, job: &Job) -> JobResult {
        match self.write(job.entity_id).await {
            Ok(outcome) => JobResult::Completed(outcome),
            Err(e) => JobResult::Failed {
                transient: e.is_transient(),
                retry_after: None,
                message: format!("Notion write-back: {e}"),
            },
        }
    }
}

/// The Notion page a sale was imported from: the newest import of its order number that came
/// from a page and did not fail.
pub async fn page_of_order(
    pool: &PgPool,
    order_number: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT notion_page_id FROM integration.notion_sale_sync_log
         WHERE stockx_order_number = $1 AND notion_page_id IS NOT NULL AND sync_status <> 'failed'
         ORDER BY synced_at DESC LIMIT 1",
    )
    .bind(order_number)
    .fetch_optional(pool)
    .await
}

/// Sales imported from a Notion page that has never been given a status (imported while
/// write-back was off, or whose write-back failed for good).
pub async fn orders_without_status(pool: &PgPool) -> Result<Vec<Uuid>, sqlx::Error> {
    let numbers: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT l.stockx_order_number FROM integration.notion_sale_sync_log l
         WHERE l.notion_page_id IS NOT NULL AND l.sync_status <> 'failed'
           AND NOT EXISTS (SELECT 1 FROM integration.notion_writeback_pages p
                           WHERE p.page_id = l.notion_page_id)",
    )
    .fetch_all(pool)
    .await?;
    sales::order_ids(pool, &numbers).await
}

/// The worker's job handler with write-back: runs `notion_writeback` jobs, and after every
/// other job of a sale with a Notion page, enqueues its write-back. Without write-back, those
/// jobs (left from when it was on) complete as `skipped`.
pub struct WithWriteback {
    inner: Arc<dyn JobHandler>,
    writeback: Option<Arc<Writeback>>,
    pool: PgPool,
}

impl WithWriteback {
    pub fn new(
        inner: Arc<dyn JobHandler>,
        writeback: Option<Arc<Writeback>>,
        pool: PgPool,
    ) -> WithWriteback {
        WithWriteback {
            inner,
            writeback,
            pool,
        }
    }

    /// Enqueues the write-back of the sale `job` was about, when it came from Notion.
    async fn follow_up(&self, job: &Job) -> Result<(), sqlx::Error> {
        let order = match job.kind {
            JobKind::Order => sales::load_order(&self.pool, job.entity_id).await?,
            JobKind::Inventory => {
                let mut conn = self.pool.acquire().await?;
                sales::load_order_for_inventory(&mut conn, job.entity_id).await?
            }
            JobKind::NotionWriteback => None,
        };
        let Some(order) = order else { return Ok(()) };
        if page_of_order(&self.pool, &order.order_number)
            .await?
            .is_some()
        {
            queue::enqueue_jobs(
                &self.pool,
                JobKind::NotionWriteback,
                &[order.id],
                FOLLOW_UP_DELAY,
            )
            .await?;
        }
        Ok(())
    }
}

impl JobHandler for WithWriteback {
    fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, JobResult> {
        Box::pin(async move {
            if job.kind == JobKind::NotionWriteback {
                return match &self.writeback {
                    Some(writeback) => writeback.run_job(job).await,
                    None => JobResult::Completed("skipped"),
                };
            }
            let result = self.inner.run(job).await;
            let ran = !matches!(result, JobResult::Postponed { .. });
            if ran && self.writeback.is_some() {
                if let Err(e) = self.follow_up(job).await {
                    // The sale is stored; the daily refresh enqueues pages still without a status.
                    tracing::warn!(error = %e, "could not enqueue the Notion write-back");
                }
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_texts() {
        assert_eq!(status_text(0), "✅ Synced to Database");
        assert_eq!(status_text(1), "⚠️ 1 validation warning");
        assert_eq!(status_text(3), "⚠️ 3 validation warnings");
    }

    #[test]
    fn long_comments_are_cut_to_notions_limit() {
        let warning = SaleWarning {
            id: 1,
            rule: "profit_mismatch".into(),
            message: "x".repeat(5000),
        };
        let text = comment_text(&warning);
        assert_eq!(text.chars().count(), MAX_TEXT);
        assert!(text.starts_with(COMMENT_PREFIX));
    }
}
