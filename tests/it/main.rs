//! One integration-test binary (link time matters on two cores): each module is one area.

mod helpers;

mod backfill;
mod binary;
mod budibase;
mod cli;
mod deploy;
mod embedded;
mod enrich;
mod import_set;
mod notion;
mod reporting;
mod roles;
mod schema;
mod stockx;
mod worker;
