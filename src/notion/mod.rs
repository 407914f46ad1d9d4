//! The Notion side of the backfill: reading historical StockX sales out of the Notion
//! database they were kept in, either live through the API ([`api`]) or from a
//! "Markdown & CSV" export ([`export`]), and turning each row into a [`mapping::SaleRecord`]
//! ready to be written. Nothing here touches PostgreSQL: the importer builds on these types.
//!
//! Both sources produce the same generic [`mapping::Row`] (property name → [`mapping::Cell`]);
//! [`mapping::Mapping`] says which property holds which field, and [`values`] holds the pure
//! parsers for values as Notion renders them.

pub mod api;
pub mod export;
pub mod import;
pub mod mapping;
pub mod values;
