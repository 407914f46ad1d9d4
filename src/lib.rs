//! stockx-sync: enriches StockX sales recorded in PostgreSQL from the StockX API, validates them,
//! and backfills the history that still lives in Notion.
//!
//! `app` puts a running process together from the settings; `cli` holds the commands. The parts:
//! `config`, `db`, `queue` (the durable job queue and the worker that drains it), `sales` (the
//! store: every statement on the `products` and `platforms` tables), `stockx` (the API client),
//! `enrich` (what a job does), `validate` (the rules), `notion` (the Notion readers and import),
//! `http` (metrics, health, the n8n endpoints), `schedule` (the worker's timetable: the nightly
//! Notion reconciliation and the daily refresh), `metrics`. `sandbox` holds local stand-ins for the
//! outside world (a StockX API sandbox, a generated Notion export) for the demo, bench and tests.

pub mod app;
pub mod cli;
pub mod config;
pub mod db;
pub mod enrich;
pub mod http;
pub mod http_retry;
pub mod market;
pub mod metrics;
pub mod notion;
pub mod queue;
pub mod report;
pub mod sales;
pub mod sandbox;
pub mod schedule;
pub mod stockx;
pub mod validate;
