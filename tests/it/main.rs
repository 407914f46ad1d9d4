//! One integration-test binary (link time matters on two cores): each module is one area.

mod helpers;

mod alerting;
mod backfill;
mod binary;
mod budibase;
mod bulk;
mod checks;
mod cli;
mod deploy;
mod embedded;
mod enrich;
mod http;
mod import_set;
mod market;
mod n8n;
mod notion;
mod notion_api;
mod notion_export;
mod ratelimit;
mod reporting;
mod robustness;
mod roi;
mod roles;
mod schedule;
mod schema;
mod stockx;
mod worker;
mod writeback;
