//! Reading the sales out of Notion: [`SalesQuery`] pages through the data source in
//! `last_edited_time` order and works around Notion's 10,000-results-per-query cap by starting a
//! new query ("window") where the last one stopped and reading the rest of a crowded instant
//! backwards by order number, so that each page is read about once; single pages are read by
//! ID or by order number for the sync endpoint. Each page becomes a [`NotionRecord`]: its properties as the
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
            .query_page(
                Some(filter),
                json!([{ "timestamp": "last_edited_time", "direction": "ascending" }]),
                None,
            )
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
        sorts: Value,
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
            "sorts": sorts,
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
        let mapping = self.mapping();
        let (mut row, relations) = self.page_row(properties);
        // The platform first: a sale of another platform needs no related page read.
        if !relations.iter().any(|(name, _)| *name == mapping.platform) {
            if let Ok(skipped @ Mapped::SkippedPlatform(_)) = map_row(mapping, &origin, &row) {
                return Ok(PageOutcome::Record(NotionRecord {
                    page_id: page_id.to_string(),
                    last_edited_time,
                    result: Ok(skipped),
                }));
            }
        }
        for (name, ids) in relations {
            let mut titles = Vec::with_capacity(ids.len());
            for id in ids {
                match self.relation_title(&name, &id).await? {
                    Some(title) => titles.push(title),
                    None => titles.push(id),
                }
            }
            row.insert(name, Cell::Names(titles));
        }
        let result = map_row(mapping, &origin, &row);
        Ok(PageOutcome::Record(NotionRecord {
            page_id: page_id.to_string(),
            last_edited_time,
            result,
        }))
    }

    /// The page's properties as a generic row, and the mapped relation columns whose related
    /// pages' titles are to be read (the supplier is a relation in the sales database); in the
    /// row they hold the related page IDs until then.
    fn page_row(
        &self,
        properties: &serde_json::Map<String, Value>,
    ) -> (Row, Vec<(String, Vec<String>)>) {
        let mapped: HashSet<&str> = self.mapping().columns().into_iter().collect();
        let mut row = Row::new();
        let mut relations = Vec::new();
        for (name, raw) in properties {
            let property = PropertyValue::from_json(raw);
            match property {
                PropertyValue::Relation { ids, has_more } if mapped.contains(name.as_str()) => {
                    if has_more {
                        tracing::warn!(property = %name, "Notion truncated a relation at 25 entries; only those are read");
                    }
                    row.insert(name.clone(), Cell::Names(ids.clone()));
                    relations.push((name.clone(), ids));
                }
                _ => row.insert(name.clone(), property.to_cell()),
            }
        }
        (row, relations)
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
    /// Queries started (1 + two per 10,000-result cap: the rest after the last instant read
    /// and that instant's rest read backwards; two more per split of an instant of more than
    /// 20,000 pages).
    pub windows: u32,
    /// Page results Notion returned, repeats included: the cost of the read. Divided by the
    /// pages read, it says how much was read twice.
    pub results: u64,
    pub trashed_skipped: u32,
    /// Pages returned without properties (limited access).
    pub partial_skipped: u32,
    /// Pages seen twice (at a window boundary, or in a crowded instant read again in parts).
    pub duplicates_skipped: u32,
}

/// A running read of the sales, batch by batch: `while let Some(batch) = q.next_batch().await?`.
///
/// Pages come sorted by (`last_edited_time`, `created_time`, order number). Notion ends every
/// query at 10,000 results, so the read is a sequence of queries ("windows"):
/// 1. The first reads everything edited on or after `since`.
/// 2. A window cut by the cap at the (edited, created) instant of its last page continues in
///    two windows: the pages after that instant, and the rest of the instant itself, read
///    backwards by order number until the read reaches pages it has seen (the cut window read
///    the instant's smallest order numbers, so the backward read meets them where they end).
///    Only the one or two batches around that boundary are read twice, however many pages
///    share the instant (a bulk import or bulk edit puts thousands there, and Notion rounds
///    both times).
/// 3. A backward read cut by the cap as well (more than 20,000 pages in one instant) splits
///    the instant by the title: the pages whose title contains a substring and those whose
///    title does not, the substring chosen from the titles just read so that both halves lose
///    pages. Each half is strictly smaller and is read the same way, so the splitting ends; it
///    fails only when more than 10,000 pages share the instant and an identical title.
///
/// Windows still to read are kept on a stack; the read goes on after a crowded instant once
/// it is read, so pages still arrive in `last_edited_time` order.
pub struct SalesQuery<'a> {
    client: &'a NotionClient,
    since: Option<OffsetDateTime>,
    pending: Vec<Window>,
    current: Option<Window>,
    cursor: Option<String>,
    capped: bool,
    /// (edited, created) of the current window's first and last results.
    first_in_window: Option<Instant>,
    last_in_window: Option<Instant>,
    /// Titles in the current window (kept only while it could turn out to be one instant).
    titles_in_window: Vec<String>,
    /// The order number (the last sort key) of the current window's last result: where a
    /// backward read of its instant meets what this window read.
    last_title: Option<String>,
    /// The name of the title property, once a page has shown it (title filters name it).
    title_property: Option<String>,
    /// Every page ID read so far (records, trashed and partial pages alike).
    seen: HashSet<String>,
    stats: QueryStats,
}

/// A page's (`last_edited_time`, `created_time`): the read's sort key.
type Instant = (OffsetDateTime, OffsetDateTime);

/// The part of the data source one query reads.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Window {
    /// Edited on or after `since` (everything when `None`).
    Since(Option<OffsetDateTime>),
    /// Sort positions after `after`: edited after `after.0`, or edited at `after.0` and
    /// created after `after.1`.
    From { after: Instant },
    /// Pages edited and created at exactly `at`, whose titles satisfy every condition.
    Instant {
        at: Instant,
        conditions: Vec<(String, bool)>,
        order: TitleOrder,
    },
}

/// How a window of one instant is read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TitleOrder {
    Ascending,
    /// Backwards, ending at the first batch that holds only pages read before and ends past
    /// the `boundary` order number (where the ascending read stopped; pages with that same
    /// number may come in any order, so all of them are read).
    Descending {
        boundary: Option<String>,
    },
}

fn rfc3339(t: OffsetDateTime) -> Result<String, NotionError> {
    t.format(&Rfc3339).map_err(|e| NotionError::Decode {
        endpoint: "filter".into(),
        message: e.to_string(),
    })
}

fn condition(key: &str, op: &str, t: OffsetDateTime) -> Result<Value, NotionError> {
    Ok(json!({ "timestamp": key, key: { op: rfc3339(t)? } }))
}

/// `key` at exactly `t`, without relying on `equals` for timestamps.
fn exactly(key: &str, t: OffsetDateTime) -> Result<[Value; 2], NotionError> {
    Ok([
        condition(key, "on_or_after", t)?,
        condition(key, "on_or_before", t)?,
    ])
}

impl Window {
    /// The query's filter; `title` is the title property's name.
    fn filter(&self, title: &str) -> Result<Option<Value>, NotionError> {
        const EDITED: &str = "last_edited_time";
        const CREATED: &str = "created_time";
        Ok(match self {
            Window::Since(None) => None,
            Window::Since(Some(t)) => Some(condition(EDITED, "on_or_after", *t)?),
            Window::From { after } => {
                let mut same_edit: Vec<Value> = exactly(EDITED, after.0)?.into();
                same_edit.push(condition(CREATED, "after", after.1)?);
                Some(json!({ "or": [
                    condition(EDITED, "after", after.0)?,
                    { "and": same_edit },
                ] }))
            }
            Window::Instant { at, conditions, .. } => {
                let mut all: Vec<Value> = exactly(EDITED, at.0)?.into();
                all.extend(exactly(CREATED, at.1)?);
                for (text, contains) in conditions {
                    let op = if *contains {
                        "contains"
                    } else {
                        "does_not_contain"
                    };
                    all.push(json!({ "property": title, "title": { op: text } }));
                }
                Some(json!({ "and": all }))
            }
        })
    }

    /// The query's sorts: by time, then by the order number (backwards for a backward read).
    fn sorts(&self, order_number: &str) -> Value {
        let direction = match self {
            Window::Instant {
                order: TitleOrder::Descending { .. },
                ..
            } => "descending",
            _ => "ascending",
        };
        json!([
            { "timestamp": "last_edited_time", "direction": "ascending" },
            { "timestamp": "created_time", "direction": "ascending" },
            { "property": order_number, "direction": direction }
        ])
    }
}

fn timestamp(page: &Value, key: &str) -> Option<OffsetDateTime> {
    page.get(key)
        .and_then(Value::as_str)
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
}

/// The plain text of a page's order-number property (`name`, the read's last sort key): the
/// title, or a text property.
fn sort_text_of(page: &Value, name: &str) -> Option<String> {
    let property = page.get("properties")?.get(name)?;
    match PropertyValue::from_json(property) {
        PropertyValue::Title(text) | PropertyValue::RichText(text) => Some(text),
        PropertyValue::Text(text) => text,
        _ => None,
    }
}

/// The name and plain text of a page's title property (the property a title filter names).
fn title_of(page: &Value) -> Option<(String, String)> {
    let (name, property) = page
        .get("properties")?
        .as_object()?
        .iter()
        .find(|(_, p)| p.get("type").and_then(Value::as_str) == Some("title"))?;
    let text = match PropertyValue::from_json(property) {
        PropertyValue::Title(text) => text,
        _ => String::new(),
    };
    Some((name.clone(), text))
}

/// A substring that some but not all of `titles` contain, as close to half of them as can be
/// found among the substrings of up to 4 characters; `None` when the titles are all the same.
fn splitting_substring(titles: &[String]) -> Option<String> {
    let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for title in titles {
        let bounds: Vec<usize> = title
            .char_indices()
            .map(|(i, _)| i)
            .chain([title.len()])
            .collect();
        let mut in_title: HashSet<&str> = HashSet::new();
        for (a, &start) in bounds.iter().enumerate() {
            for &end in bounds.iter().skip(a + 1).take(4) {
                in_title.insert(&title[start..end]);
            }
        }
        for sub in in_title {
            *counts.entry(sub).or_default() += 1;
        }
    }
    let half = titles.len() / 2;
    counts
        .into_iter()
        .filter(|(_, n)| *n > 0 && *n < titles.len())
        .min_by_key(|(sub, n)| (n.abs_diff(half), sub.len(), *sub))
        .map(|(sub, _)| sub.to_string())
}

impl SalesQuery<'_> {
    fn new(client: &NotionClient, since: Option<OffsetDateTime>) -> SalesQuery<'_> {
        SalesQuery {
            client,
            since,
            pending: vec![Window::Since(since)],
            current: None,
            cursor: None,
            capped: false,
            first_in_window: None,
            last_in_window: None,
            titles_in_window: Vec::new(),
            last_title: None,
            title_property: None,
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

    /// The next batch of records (possibly empty when a whole page was in the trash or read
    /// before), or `None` when every page has been read.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<NotionRecord>>, NotionError> {
        let window = match &self.current {
            Some(window) => window.clone(),
            None => match self.pending.pop() {
                Some(window) => {
                    self.stats.windows += 1;
                    self.current = Some(window.clone());
                    window
                }
                None => return Ok(None),
            },
        };
        let order_number = self.client.mapping().order_number.clone();
        // A window with title conditions comes after a page was read, so the title is known.
        let title = self.title_property.clone().unwrap_or_default();
        let response = self
            .client
            .query_page(
                window.filter(&title)?,
                window.sorts(&order_number),
                self.cursor.as_deref(),
            )
            .await?;
        self.stats.requests += 1;
        self.stats.results += response.results.len() as u64;
        self.capped |= response.capped;

        let mut batch = Vec::with_capacity(response.results.len());
        // Whether this answer held a page not read before: a backward read goes on until an
        // answer holds none and ends past the boundary order number.
        let mut short_of_boundary = false;
        for page in &response.results {
            let page_title = sort_text_of(page, &order_number);
            // Trashed pages move the window forward too.
            if let (Some(edited), Some(created)) = (
                timestamp(page, "last_edited_time"),
                timestamp(page, "created_time"),
            ) {
                let instant = (edited, created);
                self.first_in_window.get_or_insert(instant);
                if self.first_in_window == Some(instant) {
                    if let Some((name, text)) = title_of(page) {
                        self.title_property.get_or_insert(name);
                        self.titles_in_window.push(text);
                    }
                }
                self.last_in_window = self.last_in_window.max(Some(instant));
            }
            self.last_title = page_title;
            let first_time = match page.get("id").and_then(Value::as_str) {
                Some(id) => self.seen.insert(id.to_string()),
                None => true,
            };
            if !first_time {
                self.stats.duplicates_skipped += 1;
                continue;
            }
            short_of_boundary = true;
            match self.client.page_to_record(page).await? {
                PageOutcome::Trashed => self.stats.trashed_skipped += 1,
                PageOutcome::Partial => self.stats.partial_skipped += 1,
                PageOutcome::Record(record) => batch.push(record),
            }
        }

        // Pages with the boundary order number may come in any order: the backward read ends
        // only once an answer has moved past them (sorted, they are together).
        let met_the_read_part = match &window {
            Window::Instant {
                order: TitleOrder::Descending { boundary },
                ..
            } => {
                !response.results.is_empty()
                    && !short_of_boundary
                    && (boundary.is_none() || self.last_title != *boundary)
            }
            _ => false,
        };
        if response.has_more && !met_the_read_part {
            self.cursor = response.next_cursor;
            if self.cursor.is_none() {
                return Err(NotionError::Decode {
                    endpoint: "query".into(),
                    message: "has_more is true but next_cursor is missing".into(),
                });
            }
            return Ok(Some(batch));
        }
        if self.capped && !met_the_read_part {
            self.after_cap(&window)?;
        }
        self.current = None;
        self.cursor = None;
        self.capped = false;
        self.first_in_window = None;
        self.last_in_window = None;
        self.titles_in_window.clear();
        self.last_title = None;
        Ok(Some(batch))
    }

    /// The cap ended a window: continue after the instant of its last page and read the rest
    /// of that instant backwards; or, when a backward read was capped too, split the instant
    /// by title.
    fn after_cap(&mut self, window: &Window) -> Result<(), NotionError> {
        let Some(last) = self.last_in_window else {
            return Err(NotionError::ResultLimitStuck { at: String::new() });
        };
        let backwards =
            |conditions: Vec<(String, bool)>, boundary: Option<String>| Window::Instant {
                at: last,
                conditions,
                order: TitleOrder::Descending { boundary },
            };
        match window {
            Window::Since(_) | Window::From { .. } => {
                tracing::info!(edited = %last.0, "Notion's 10,000-result cap reached; continuing in a new query");
                self.pending.push(Window::From { after: last });
                self.pending
                    .push(backwards(Vec::new(), self.last_title.clone()));
            }
            Window::Instant {
                conditions,
                order: TitleOrder::Ascending,
                ..
            } => {
                self.pending
                    .push(backwards(conditions.clone(), self.last_title.clone()));
            }
            Window::Instant {
                conditions,
                order: TitleOrder::Descending { .. },
                ..
            } => {
                let split = splitting_substring(&self.titles_in_window).ok_or_else(|| {
                    NotionError::ResultLimitStuck {
                        at: last.0.format(&Rfc3339).unwrap_or_default(),
                    }
                })?;
                tracing::info!(edited = %last.0, created = %last.1, contains = %split,
                    "more than 20,000 pages share one edited and created time; reading them in parts by title");
                for contains in [false, true] {
                    let mut conditions = conditions.clone();
                    conditions.push((split.clone(), contains));
                    self.pending.push(Window::Instant {
                        at: last,
                        conditions,
                        order: TitleOrder::Ascending,
                    });
                }
            }
        }
        Ok(())
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
