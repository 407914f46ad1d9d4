//! stockx-sync: enriches StockX sales recorded in PostgreSQL from the StockX API, validates them,
//! and backfills the history that still lives in Notion.

pub mod backfill;
pub mod bench;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod enrich;
pub mod http;
pub mod http_retry;
pub mod metrics;
pub mod notion;
pub mod queue;
pub mod run_worker;
pub mod sandbox;
pub mod status;
pub mod stockx;
pub mod validate;
pub mod verify;
pub mod worker;
