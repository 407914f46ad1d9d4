//! One integration-test binary (link time matters on two cores): each module is one area.

mod helpers;

mod backfill;
mod binary;
mod cli;
mod deploy;
mod embedded;
mod enrich;
mod notion;
mod reporting;
mod robustness;
mod schema;
mod stockx;
mod worker;
