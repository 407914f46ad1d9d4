//! Reading the sales out of Notion: [`SalesQuery`] pages through the data source in
//! `last_edited_time` order and works around Notion's 10,000-results-per-query cap by starting a
//! new query ("window") at the last edited time seen; single pages are read by ID or by order
//! number for the sync endpoint. Each page becomes a [`NotionRecord`]: its properties as the
//! generic [`Row`] the export reader also produces, mapped to a sale. Kept apart from the
//! client so that the window logic can be read without the HTTP details.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::client::{
    NotionClient, NotionError, QueryTarget, LEGACY_NOTION_VERSION, NOTION_VERSION,
};
use super::mapping::{map_row, Mapped, RecordError, RecordSource};
use super::properties::PropertyValue;
use super::row::{Cell, Row};
use super::values;

/// Notion's maximum page size.
const PAGE_SIZE: u32 = 100;

/// One page read from Notion and what it maps to.
#[derive(Debug, Clone, PartialEq)]
pub struct NotionRecord {
    pub page_id: String,
    pub last_edited_time: OffsetDateTime,
    pub result: Result<Mapped, RecordError>,
}

impl NotionClient {
    /// Every sale edited on or after `since` (all when `None`), in ascending
    /// `last_edited_time`, in batches of up to 100. Pages in the trash are left out. For
    /// incremental runs pass the last watermark minus a few minutes: Notion rounds
    /// `last_edited_time` to the minute; the importer upserts, so overlap is harmless.
    pub fn query_sales(&self, since: Option<OffsetDateTime>) -> SalesQuery<'_> {
        SalesQuery::new(self, since)
    }

    /// One page by ID (or URL); `None` when it is in the trash.
    pub async fn retrieve_page(&self, page_id: &str) -> Result<Option<NotionRecord>, NotionError> {
        let id = values::extract_notion_id(page_id).unwrap_or_else(|| page_id.trim().to_string());
        let path = format!("/v1/pages/{id}");
        let page = self
            .request(Method::GET, "/v1/pages/{id}", &path, NOTION_VERSION, None)
            .await?;
        match self.page_to_record(&page).await? {
            PageOutcome::Record(record) => Ok(Some(record)),
            PageOutcome::Trashed | PageOutcome::Partial => Ok(None),
        }
    }

    /// The page whose title (the order-number property) equals `order_number`; the most
    /// recently edited one if several do. `None` when there is none outside the trash.
    pub async fn find_by_order_number(
        &self,
        order_number: &str,
    ) -> Result<Option<NotionRecord>, NotionError> {
        let filter = json!({ "property": self.mapping().order_number, "title": { "equals": order_number.trim() } });
        let response = self
            .query_page(Some(filter), "last_edited_time", None)
            .await?;
        let mut found = None;
        for page in response.results {
            if let PageOutcome::Record(record) = self.page_to_record(&page).await? {
                found = Some(record);
            }
        }
        Ok(found)
    }

    async fn query_page(
        &self,
        filter: Option<Value>,
        sort_by: &str,
        cursor: Option<&str>,
    ) -> Result<QueryResponse, NotionError> {
        let target = self.resolve_target().await?;
        let (template, path, version) = match &target {
            QueryTarget::DataSource { id } => (
                "/v1/data_sources/{id}/query",
                format!("/v1/data_sources/{id}/query"),
                NOTION_VERSION,
            ),
            QueryTarget::LegacyDatabase { id } => (
                "/v1/databases/{id}/query",
                format!("/v1/databases/{id}/query"),
                LEGACY_NOTION_VERSION,
            ),
        };
        let mut body = json!({
            "page_size": PAGE_SIZE,
            "sorts": [{ "timestamp": sort_by, "direction": "ascending" }],
        });
        if let Some(filter) = filter {
            body["filter"] = filter;
        }
        if let Some(cursor) = cursor {
            body["start_cursor"] = json!(cursor);
        }
        let answer = self
            .request(Method::POST, template, &path, version, Some(&body))
            .await?;
        QueryResponse::from_json(answer, template)
    }

    async fn page_to_record(&self, page: &Value) -> Result<PageOutcome, NotionError> {
        let flag = |key: &str| page.get(key).and_then(Value::as_bool).unwrap_or(false);
        if flag("in_trash") || flag("archived") {
            return Ok(PageOutcome::Trashed);
        }
        let (Some(page_id), Some(properties), Some(edited)) = (
            page.get("id").and_then(Value::as_str),
            page.get("properties").and_then(Value::as_object),
            page.get("last_edited_time").and_then(Value::as_str),
        ) else {
            let id = page.get("id").and_then(Value::as_str).unwrap_or("?");
            tracing::warn!(
                page = id,
                "a Notion page came back without properties (limited access); skipped"
            );
            return Ok(PageOutcome::Partial);
        };
        let last_edited_time =
            OffsetDateTime::parse(edited, &Rfc3339).map_err(|e| NotionError::Decode {
                endpoint: "page".into(),
                message: format!("last_edited_time {edited:?}: {e}"),
            })?;
        let origin = RecordSource::NotionPage {
            page_id: page_id.to_string(),
            last_edited_time,
        };
        let result = match self.page_row(properties, &origin).await? {
            Ok(row) => map_row(self.mapping(), &origin, &row),
            Err(e) => Err(e),
        };
        Ok(PageOutcome::Record(NotionRecord {
            page_id: page_id.to_string(),
            last_edited_time,
            result,
        }))
    }

    /// The page's properties as a generic row, relation IDs of mapped columns replaced by
    /// the related pages' titles (the supplier is a relation in the sales database).
    async fn page_row(
        &self,
        properties: &serde_json::Map<String, Value>,
        origin: &RecordSource,
    ) -> Result<Result<Row, RecordError>, NotionError> {
        let mapped: HashSet<&str> = self.mapping().columns().into_iter().collect();
        let mut row = Row::new();
        for (name, raw) in properties {
            let property = PropertyValue::from_json(raw);
            let cell = match &property {
                PropertyValue::Relation { ids, has_more } if mapped.contains(name.as_str()) => {
                    if *has_more {
                        tracing::warn!(property = %name, "Notion truncated a relation at 25 entries; only those are read");
                    }
                    let mut titles = Vec::with_capacity(ids.len());
                    for id in ids {
                        match self.relation_title(id).await {
                            Ok(title) => titles.push(title),
                            Err(NotionError::NotFound { .. } | NotionError::Forbidden { .. }) => {
                                return Ok(Err(RecordError {
                                    origin: origin.clone(),
                                    column: Some(name.clone()),
                                    raw: Some(id.clone()),
                                    message: "the related page cannot be read: share the related database with the integration too".into(),
                                    order_number: None,
                                }));
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    Cell::Names(titles)
                }
                _ => property.to_cell(),
            };
            row.insert(name.clone(), cell);
        }
        Ok(Ok(row))
    }
}

enum PageOutcome {
    Record(NotionRecord),
    Trashed,
    Partial,
}

/// The parts of a query answer the reader needs.
struct QueryResponse {
    results: Vec<Value>,
    next_cursor: Option<String>,
    has_more: bool,
    /// `request_status.incomplete_reason == "query_result_limit_reached"`.
    capped: bool,
}

impl QueryResponse {
    fn from_json(mut answer: Value, template: &str) -> Result<Self, NotionError> {
        let Some(results) = answer
            .get_mut("results")
            .and_then(Value::as_array_mut)
            .map(std::mem::take)
        else {
            return Err(NotionError::Decode {
                endpoint: template.into(),
                message: "no results array".into(),
            });
        };
        let status = answer.get("request_status");
        let capped = status.and_then(|s| s.get("type")).and_then(Value::as_str)
            == Some("incomplete")
            && status
                .and_then(|s| s.get("incomplete_reason"))
                .and_then(Value::as_str)
                == Some("query_result_limit_reached");
        Ok(Self {
            results,
            next_cursor: answer
                .get("next_cursor")
                .and_then(Value::as_str)
                .map(str::to_string),
            has_more: answer
                .get("has_more")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            capped,
        })
    }
}

/// Counts of what a query run saw besides the records it returned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryStats {
    /// Requests made to the query endpoint.
    pub requests: u32,
    /// Queries started (1 + the number of times the 10,000-result cap was met).
    pub windows: u32,
    pub trashed_skipped: u32,
    /// Pages returned without properties (limited access).
    pub partial_skipped: u32,
    /// Pages seen twice at a window boundary.
    pub duplicates_skipped: u32,
}

/// A running read of the sales, batch by batch: `while let Some(batch) = q.next_batch().await?`.
///
/// The read is a sequence of queries ("windows"). The first filters on `last_edited_time` ≥
/// `since`; when Notion's 10,000-result cap ends one, the next starts at the last edited time
/// seen. Should more than 10,000 pages share one edited minute (a bulk edit), that minute is
/// read on its own, by `created_time` windows, before going on after it.
pub struct SalesQuery<'a> {
    client: &'a NotionClient,
    since: Option<OffsetDateTime>,
    window: Window,
    cursor: Option<String>,
    capped: bool,
    done: bool,
    min_edited_in_window: Option<OffsetDateTime>,
    max_edited_in_window: Option<OffsetDateTime>,
    max_created_in_window: Option<OffsetDateTime>,
    seen: HashSet<String>,
    stats: QueryStats,
}

/// The part of the data source one query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    /// `last_edited_time` on or after.
    edited_from: Option<OffsetDateTime>,
    /// Set while reading one crowded edited minute by creation time.
    minute: Option<MinuteWindow>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MinuteWindow {
    /// `last_edited_time` before (the minute's end).
    edited_before: OffsetDateTime,
    /// `created_time` on or after.
    created_from: Option<OffsetDateTime>,
}

fn rfc3339(t: OffsetDateTime) -> Result<String, NotionError> {
    t.format(&Rfc3339).map_err(|e| NotionError::Decode {
        endpoint: "filter".into(),
        message: e.to_string(),
    })
}

impl Window {
    /// The filter and sort key of this window's query.
    fn filter(&self) -> Result<(Option<Value>, &'static str), NotionError> {
        let edited_from = match self.edited_from {
            Some(t) => Some(
                json!({ "timestamp": "last_edited_time", "last_edited_time": { "on_or_after": rfc3339(t)? } }),
            ),
            None => None,
        };
        let Some(minute) = self.minute else {
            return Ok((edited_from, "last_edited_time"));
        };
        let mut conditions: Vec<Value> = edited_from.into_iter().collect();
        conditions.push(json!({ "timestamp": "last_edited_time", "last_edited_time": { "before": rfc3339(minute.edited_before)? } }));
        if let Some(created) = minute.created_from {
            conditions.push(json!({ "timestamp": "created_time", "created_time": { "on_or_after": rfc3339(created)? } }));
        }
        Ok((Some(json!({ "and": conditions })), "created_time"))
    }
}

fn timestamp(page: &Value, key: &str) -> Option<OffsetDateTime> {
    page.get(key)
        .and_then(Value::as_str)
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
}

impl SalesQuery<'_> {
    fn new(client: &NotionClient, since: Option<OffsetDateTime>) -> SalesQuery<'_> {
        SalesQuery {
            client,
            since,
            window: Window {
                edited_from: since,
                minute: None,
            },
            cursor: None,
            capped: false,
            done: false,
            min_edited_in_window: None,
            max_edited_in_window: None,
            max_created_in_window: None,
            seen: HashSet::new(),
            stats: QueryStats::default(),
        }
    }

    pub fn stats(&self) -> QueryStats {
        self.stats
    }

    /// The `since` the query was started with.
    pub fn since(&self) -> Option<OffsetDateTime> {
        self.since
    }

    /// The next batch of records (possibly empty when a whole page was in the trash), or
    /// `None` when every page has been read.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<NotionRecord>>, NotionError> {
        if self.done {
            return Ok(None);
        }
        if self.cursor.is_none() {
            self.stats.windows += 1;
        }
        let (filter, sort_by) = self.window.filter()?;
        let response = self
            .client
            .query_page(filter, sort_by, self.cursor.as_deref())
            .await?;
        self.stats.requests += 1;
        self.capped |= response.capped;

        let mut batch = Vec::with_capacity(response.results.len());
        for page in &response.results {
            // Trashed pages move the window forward too.
            let edited = timestamp(page, "last_edited_time");
            if self.min_edited_in_window.is_none() || edited < self.min_edited_in_window {
                self.min_edited_in_window = edited;
            }
            self.max_edited_in_window = self.max_edited_in_window.max(edited);
            self.max_created_in_window = self
                .max_created_in_window
                .max(timestamp(page, "created_time"));
            match self.client.page_to_record(page).await? {
                PageOutcome::Trashed => self.stats.trashed_skipped += 1,
                PageOutcome::Partial => self.stats.partial_skipped += 1,
                PageOutcome::Record(record) => {
                    if self.seen.insert(record.page_id.clone()) {
                        batch.push(record);
                    } else {
                        self.stats.duplicates_skipped += 1;
                    }
                }
            }
        }

        if response.has_more {
            self.cursor = response.next_cursor;
            if self.cursor.is_none() {
                return Err(NotionError::Decode {
                    endpoint: "query".into(),
                    message: "has_more is true but next_cursor is missing".into(),
                });
            }
            return Ok(Some(batch));
        }
        let next = if self.capped {
            self.window_after_cap()?
        } else {
            self.window_after_end()
        };
        match next {
            Some(window) => {
                self.window = window;
                self.cursor = None;
                self.capped = false;
                self.min_edited_in_window = None;
                self.max_edited_in_window = None;
                self.max_created_in_window = None;
            }
            None => self.done = true,
        }
        Ok(Some(batch))
    }

    /// The cap ended pagination silently: continue from the last time seen (pages at that
    /// time come again and are dropped as already seen).
    fn window_after_cap(&self) -> Result<Option<Window>, NotionError> {
        let stuck = |at: Option<OffsetDateTime>| NotionError::ResultLimitStuck {
            at: at.and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_default(),
        };
        match self.window.minute {
            None => {
                let Some(edited) = self.max_edited_in_window else {
                    return Err(stuck(None));
                };
                // A window that spans more than one minute can move on; one whose pages all
                // share a minute would only return the same pages again.
                let spans_minutes = self.min_edited_in_window < Some(edited);
                if Some(edited) > self.window.edited_from && spans_minutes {
                    tracing::info!(from = %edited, "Notion's 10,000-result cap reached; continuing in a new query");
                    return Ok(Some(Window {
                        edited_from: Some(edited),
                        minute: None,
                    }));
                }
                // 10,000 pages edited in one minute: read that minute by creation time.
                tracing::info!(minute = %edited, "Notion's result cap reached within one edited minute; reading it by created time");
                Ok(Some(Window {
                    edited_from: Some(edited),
                    minute: Some(MinuteWindow {
                        edited_before: edited + time::Duration::minutes(1),
                        created_from: None,
                    }),
                }))
            }
            Some(minute) => match self.max_created_in_window {
                Some(created) if Some(created) > minute.created_from => Ok(Some(Window {
                    minute: Some(MinuteWindow {
                        created_from: Some(created),
                        ..minute
                    }),
                    ..self.window
                })),
                other => Err(stuck(other)),
            },
        }
    }

    /// A window ended normally: done, or back to the main read after a crowded minute.
    fn window_after_end(&self) -> Option<Window> {
        self.window.minute.map(|minute| Window {
            edited_from: Some(minute.edited_before),
            minute: None,
        })
    }

    /// Reads everything (for small databases and tests).
    pub async fn collect_all(mut self) -> Result<(Vec<NotionRecord>, QueryStats), NotionError> {
        let mut all = Vec::new();
        while let Some(batch) = self.next_batch().await? {
            all.extend(batch);
        }
        Ok((all, self.stats))
    }
}
