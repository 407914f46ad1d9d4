//! The Notion side of the backfill: reading historical StockX sales out of the Notion
//! database they were kept in, either live through the API ([`client`], [`query`]) or from a
//! "Markdown & CSV" export ([`export`]), turning each row into a [`mapping::SaleRecord`], and
//! writing those into PostgreSQL ([`import`]) through the same path Budibase entries take.
//! [`backfill`] runs a whole import from the settings, for the `backfill notion` command and the
//! HTTP batch-sync endpoint alike. [`writeback`] writes each sale's status (and a comment per
//! validation warning) back to its page, when that is switched on.
//!
//! Both sources produce the same generic [`row::Row`] (property name → [`row::Cell`]);
//! [`properties`] types the API's property JSON, [`mapping::Mapping`] says which property holds
//! which field, and [`values`] holds the pure parsers for values as Notion renders them.
//!
//! How an importer uses it:
//!
//! ```ignore
//! // From an export: check the columns once, then map row by row.
//! let table = export::read_export(path)?;
//! mapping::check_columns(&mapping, &table.headers)?;
//! for (row_number, row) in &table.rows {
//!     let origin = mapping::RecordSource::CsvRow { row: *row_number };
//!     match row.as_ref().map_err(Clone::clone).and_then(|row| mapping::map_row(&mapping, &origin, row)) {
//!         Ok(mapping::Mapped::Sale(sale)) => { /* insert into platforms.stockx_sale_entry */ }
//!         Ok(mapping::Mapped::SkippedPlatform(_)) => { /* count as skipped */ }
//!         Err(e) => { /* count as failed, log e (names row, column and value) */ }
//!     }
//! }
//!
//! // From the API: batches of up to 100 in last_edited_time order.
//! let client = client::NotionClient::new(config, mapping)?;
//! let mut query = client.query_sales(since);
//! while let Some(batch) = query.next_batch().await? {
//!     for record in batch { /* record.page_id, record.last_edited_time, record.result */ }
//! }
//! ```

pub mod backfill;
pub mod client;
pub mod export;
pub mod import;
pub mod mapping;
pub mod properties;
pub mod query;
pub mod row;
pub mod values;
pub mod writeback;
