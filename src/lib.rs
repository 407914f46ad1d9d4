//! stockx-sync: enriches StockX sales recorded in PostgreSQL from the StockX API, validates them,
//! and backfills the history that still lives in Notion.

pub mod metrics;
pub mod notion;
