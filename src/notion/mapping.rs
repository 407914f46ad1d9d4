//! From a Notion row to a sale: which property holds which field ([`Mapping`], configurable as
//! `[notion.mapping]`), and [`map_row`], which turns the generic [`Row`] both sources produce
//! into a [`SaleRecord`], a skipped non-StockX sale, or a [`RecordError`] that names the
//! row, the column and the raw value.
//!
//! Rules:
//! - A row whose platform column is set to anything but `platform_value` (case-insensitive) is
//!   [`Mapped::SkippedPlatform`]; it is counted, not an error, and its other cells are not read.
//! - An **empty platform** is skipped too by default (`empty_platform = "skip"`): importing a
//!   sale made elsewhere as a StockX order is worse than skipping one that can be fixed in
//!   Notion and imported again. `empty_platform = "import"` treats empty as StockX.
//! - Required: order number, SKU (falling back to the `Name` column when the SKU column is
//!   absent or the cell empty), size, supplier, purchase price, net proceeds, sale date.
//! - `size_region` comes from its own column when one is mapped; otherwise a leading region
//!   word in the size (`US 10.5`, `EU 44`, `UK 9`, `US W 8`) is split off.
//! - An optional field mapped to `""` is not read at all.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use super::row::{Cell, Row};
use super::values::{self, DateOrder, DecimalSeparator, ValueError};

/// Which Notion property (column header) holds each field of a sale.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mapping {
    /// The StockX order number; the database's title property.
    pub order_number: String,
    pub sku: String,
    /// Read when the `sku` column is absent or its cell empty; `""` = no fallback.
    pub sku_fallback: String,
    pub size: String,
    /// `""` = take a region word off the front of the size.
    pub size_region: String,
    pub supplier: String,
    pub purchase_price: String,
    pub purchase_date: String,
    pub sale_price: String,
    pub net_proceeds: String,
    pub profit: String,
    pub roi: String,
    pub sold_at: String,
    pub delivered_at: String,
    /// `""` = every row is a StockX sale.
    pub platform: String,
    pub notes: String,
    /// The platform value that marks a StockX sale.
    pub platform_value: String,
    pub empty_platform: EmptyPlatform,
    /// How to read numeric dates such as `03/02/2025` where both orders are possible.
    pub date_order: DateOrder,
    /// The decimal separator of money and percentages; `auto` decides by position.
    pub decimal_separator: DecimalSeparator,
}

/// What to do with a row whose platform cell is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EmptyPlatform {
    /// Skip it as a non-StockX row (counted as skipped, platform `""`).
    #[default]
    Skip,
    /// Treat it as a StockX sale.
    Import,
}

impl Default for Mapping {
    fn default() -> Self {
        Self {
            order_number: "Sale ID".into(),
            sku: "SKU".into(),
            sku_fallback: "Name".into(),
            size: "Size".into(),
            size_region: String::new(),
            supplier: "Supplier".into(),
            purchase_price: "Net Buy".into(),
            purchase_date: "Purchase Date".into(),
            sale_price: "Sale Price".into(),
            net_proceeds: "Net Sale".into(),
            profit: "Profit".into(),
            roi: "ROI".into(),
            sold_at: "Sale Date".into(),
            delivered_at: "Delivery Date".into(),
            platform: "Sale Platform".into(),
            notes: String::new(),
            platform_value: "StockX".into(),
            empty_platform: EmptyPlatform::Skip,
            date_order: DateOrder::MonthFirst,
            decimal_separator: DecimalSeparator::Auto,
        }
    }
}

impl Mapping {
    /// `(field, column)` for every mapped column except the SKU pair, which is checked apart.
    fn mapped_columns(&self) -> Vec<(&'static str, &str)> {
        [
            ("order_number", self.order_number.as_str()),
            ("size", &self.size),
            ("size_region", &self.size_region),
            ("supplier", &self.supplier),
            ("purchase_price", &self.purchase_price),
            ("purchase_date", &self.purchase_date),
            ("sale_price", &self.sale_price),
            ("net_proceeds", &self.net_proceeds),
            ("profit", &self.profit),
            ("roi", &self.roi),
            ("sold_at", &self.sold_at),
            ("delivered_at", &self.delivered_at),
            ("platform", &self.platform),
            ("notes", &self.notes),
        ]
        .into_iter()
        .filter(|(_, column)| !column.is_empty())
        .collect()
    }

    /// The column names this mapping reads (for trimming API responses, resolving relations).
    pub fn columns(&self) -> Vec<&str> {
        let mut columns: Vec<&str> = self.mapped_columns().into_iter().map(|(_, c)| c).collect();
        columns.push(&self.sku);
        if !self.sku_fallback.is_empty() {
            columns.push(&self.sku_fallback);
        }
        columns
    }
}

/// A mapped column the source does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error(
        "the Notion data has no column {}; it has: {}. Rename the column in Notion or set [notion.mapping] accordingly",
        describe_missing(.missing),
        .available.join(", ")
    )]
    MissingColumns {
        /// `(field, column)` pairs not found.
        missing: Vec<(String, String)>,
        /// The columns the source does have.
        available: Vec<String>,
    },
}

fn describe_missing(missing: &[(String, String)]) -> String {
    missing
        .iter()
        .map(|(field, column)| format!("\"{column}\" (mapped as {field})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Fields a sale can do without: their cells may be empty, and their columns absent.
const OPTIONAL_FIELDS: [&str; 7] = [
    "purchase_date",
    "sale_price",
    "profit",
    "roi",
    "delivered_at",
    "notes",
    "size_region",
];

/// An optional field still mapped to its default column name: the mapping was not written for
/// this export, so the column may simply not be there. A column someone named on purpose must
/// be there (a typo would otherwise empty the field silently).
fn default_optional(field: &str, column: &str) -> bool {
    OPTIONAL_FIELDS.contains(&field)
        && Mapping::default()
            .mapped_columns()
            .iter()
            .any(|(f, c)| *f == field && *c == column)
}

/// Optional fields at their default column names that `available` lacks: read as empty.
pub fn absent_optional_columns<'a>(
    mapping: &'a Mapping,
    available: &[String],
) -> Vec<(&'static str, &'a str)> {
    let has = |column: &str| available.iter().any(|a| a.trim() == column);
    mapping
        .mapped_columns()
        .into_iter()
        .filter(|(field, column)| !has(column) && default_optional(field, column))
        .collect()
}

/// Every mapped column must exist in `available`, except optional fields left at their default
/// names ([`absent_optional_columns`]); the SKU needs its column or the fallback.
pub fn check_columns(mapping: &Mapping, available: &[String]) -> Result<(), MappingError> {
    let has = |column: &str| available.iter().any(|a| a.trim() == column);
    let mut missing: Vec<(String, String)> = mapping
        .mapped_columns()
        .into_iter()
        .filter(|(field, column)| !has(column) && !default_optional(field, column))
        .map(|(field, column)| (field.to_string(), column.to_string()))
        .collect();
    let sku_found =
        has(&mapping.sku) || (!mapping.sku_fallback.is_empty() && has(&mapping.sku_fallback));
    if !sku_found {
        let column = if mapping.sku_fallback.is_empty() {
            mapping.sku.clone()
        } else {
            format!("{}\" or \"{}", mapping.sku, mapping.sku_fallback)
        };
        missing.insert(1, ("sku".to_string(), column));
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(MappingError::MissingColumns {
            missing,
            available: available.to_vec(),
        })
    }
}

/// Where a record came from, for error messages and the sync log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordSource {
    /// A row of an export CSV, numbered as a spreadsheet does (the header is row 1).
    CsvRow { row: u64 },
    /// A page read through the API.
    NotionPage {
        page_id: String,
        last_edited_time: OffsetDateTime,
    },
}

impl fmt::Display for RecordSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordSource::CsvRow { row } => write!(f, "row {row}"),
            RecordSource::NotionPage { page_id, .. } => write!(f, "Notion page {page_id}"),
        }
    }
}

/// A sale as read from Notion, ready for `platforms.stockx_sale_entry`.
#[derive(Debug, Clone, PartialEq)]
pub struct SaleRecord {
    pub source: RecordSource,
    pub stockx_order_number: String,
    pub sku: String,
    pub size: String,
    pub size_region: Option<String>,
    pub supplier: String,
    pub purchase_price: Decimal,
    pub purchase_date: Option<Date>,
    pub sale_price: Option<Decimal>,
    pub net_proceeds: Decimal,
    pub profit: Option<Decimal>,
    /// A fraction: 0.25 = 25 %.
    pub roi: Option<Decimal>,
    pub sold_at: Date,
    pub delivered_at: Option<Date>,
    pub notes: Option<String>,
}

/// What a row turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    Sale(Box<SaleRecord>),
    /// A sale on another platform (the platform value as found; `""` when empty).
    SkippedPlatform(String),
}

/// A row that cannot become a sale: which row, which column, which raw value, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}{}: {message}", describe_column(.column, .raw))]
pub struct RecordError {
    pub origin: RecordSource,
    /// The column at fault; `None` for a row that could not be read at all.
    pub column: Option<String>,
    /// The raw value at fault, as found.
    pub raw: Option<String>,
    pub message: String,
    /// The record's order number, when its title cell could be read. Behind one thin pointer:
    /// the error travels in every `Result` of the mapping, which should stay small.
    #[allow(clippy::box_collection)]
    pub order_number: Option<Box<String>>,
}

fn describe_column(column: &Option<String>, raw: &Option<String>) -> String {
    match (column, raw) {
        (Some(c), Some(r)) => format!(", column {c:?}, value {r:?}"),
        (Some(c), None) => format!(", column {c:?}"),
        (None, _) => String::new(),
    }
}

impl RecordError {
    /// An error about the row as a whole (e.g. a broken CSV line).
    pub fn row(origin: RecordSource, message: impl Into<String>) -> Self {
        Self {
            origin,
            column: None,
            raw: None,
            message: message.into(),
            order_number: None,
        }
    }
}

/// Reads the fields of one row for one record, attaching row and column to every error.
struct FieldReader<'a> {
    row: &'a Row,
    origin: &'a RecordSource,
    date_order: DateOrder,
    decimal_separator: DecimalSeparator,
}

impl FieldReader<'_> {
    fn error(&self, column: &str, raw: Option<String>, message: impl Into<String>) -> RecordError {
        RecordError {
            origin: self.origin.clone(),
            column: Some(column.to_string()),
            raw,
            message: message.into(),
            order_number: None,
        }
    }

    fn value_error(&self, column: &str, e: ValueError) -> RecordError {
        let raw = e.raw.clone();
        self.error(column, Some(raw), e.to_string())
    }

    fn cell(&self, column: &str) -> Option<&Cell> {
        if column.is_empty() {
            None
        } else {
            self.row.get(column)
        }
    }

    fn unsupported(&self, column: &str, cell: &Cell, wanted: &str) -> RecordError {
        let raw = match cell {
            Cell::Raw(v) => v.to_string(),
            other => format!("{other:?}"),
        };
        self.error(
            column,
            Some(raw),
            format!("this property type cannot be read as {wanted}"),
        )
    }

    fn text(&self, column: &str) -> Result<Option<String>, RecordError> {
        let Some(cell) = self.cell(column) else {
            return Ok(None);
        };
        let text = match cell {
            Cell::Empty => None,
            Cell::Text(t) => values::non_empty(t).map(str::to_string),
            Cell::Number(n) => Some(n.normalize().to_string()),
            Cell::Names(n) if n.is_empty() => None,
            Cell::Names(n) => Some(n.join(", ")),
            Cell::Date(d) => Some(d.to_string()),
            Cell::Checkbox(b) => Some(if *b { "Yes" } else { "No" }.to_string()),
            Cell::Raw(serde_json::Value::String(s)) => values::non_empty(s).map(str::to_string),
            Cell::Raw(serde_json::Value::Null) => None,
            other => return Err(self.unsupported(column, other, "text")),
        };
        Ok(text)
    }

    /// A relation or select: titles without their links.
    fn name(&self, column: &str) -> Result<Option<String>, RecordError> {
        match self.cell(column) {
            Some(Cell::Text(t)) => Ok(values::parse_relation_name(t)),
            _ => self.text(column),
        }
    }

    fn amount(
        &self,
        column: &str,
        parse: fn(&str, DecimalSeparator) -> Result<Option<Decimal>, ValueError>,
    ) -> Result<Option<Decimal>, RecordError> {
        match self.cell(column) {
            None | Some(Cell::Empty) => Ok(None),
            Some(Cell::Number(n)) => Ok(Some(*n)),
            Some(Cell::Text(t)) => {
                parse(t, self.decimal_separator).map_err(|e| self.value_error(column, e))
            }
            Some(Cell::Raw(serde_json::Value::Null)) => Ok(None),
            Some(other) => Err(self.unsupported(column, other, "a number")),
        }
    }

    fn money(&self, column: &str) -> Result<Option<Decimal>, RecordError> {
        self.amount(column, values::parse_money_in)
    }

    fn percent(&self, column: &str) -> Result<Option<Decimal>, RecordError> {
        self.amount(column, values::parse_percent_in)
    }

    fn date(&self, column: &str) -> Result<Option<Date>, RecordError> {
        match self.cell(column) {
            None | Some(Cell::Empty) => Ok(None),
            Some(Cell::Date(d)) => Ok(Some(*d)),
            Some(Cell::Text(t)) => {
                values::parse_date(t, self.date_order).map_err(|e| self.value_error(column, e))
            }
            Some(Cell::Raw(serde_json::Value::Null)) => Ok(None),
            Some(other) => Err(self.unsupported(column, other, "a date")),
        }
    }

    fn required<T>(&self, column: &str, field: &str, value: Option<T>) -> Result<T, RecordError> {
        value.ok_or_else(|| {
            let message = if self.cell(column).is_none() {
                format!("the column is missing but {field} is required")
            } else {
                format!("is empty but {field} is required")
            };
            self.error(column, None, message)
        })
    }
}

/// Is this platform value the configured StockX value? Multi-select cells (`StockX, eBay`)
/// match when one option matches.
fn is_platform(found: &str, wanted: &str) -> bool {
    found.trim().eq_ignore_ascii_case(wanted.trim())
        || values::parse_select(found)
            .iter()
            .any(|v| v.eq_ignore_ascii_case(wanted.trim()))
}

/// Splits a region word off a size: `US 10.5` → (`10.5`, `US`), `US W 8` → (`8`, `US W`).
pub fn split_size_region(size: &str) -> (String, Option<String>) {
    const REGIONS: [&str; 7] = ["US", "EU", "UK", "JP", "CM", "KR", "FR"];
    let trimmed = size.trim();
    let mut words = trimmed.split_whitespace();
    let Some(first) = words.next() else {
        return (String::new(), None);
    };
    let upper = first.to_ascii_uppercase();
    if !REGIONS.contains(&upper.as_str()) {
        return (trimmed.to_string(), None);
    }
    let rest: Vec<&str> = words.collect();
    let (region, value) = match rest.split_first() {
        Some((gender, value))
            if ["M", "W", "Y", "C"].contains(&gender.to_ascii_uppercase().as_str())
                && !value.is_empty() =>
        {
            (
                format!("{upper} {}", gender.to_ascii_uppercase()),
                value.join(" "),
            )
        }
        _ => (upper, rest.join(" ")),
    };
    if value.is_empty() {
        (trimmed.to_string(), None)
    } else {
        (value, Some(region))
    }
}

/// Turns one row into a sale, a skipped platform, or an error naming the row and column.
pub fn map_row(mapping: &Mapping, origin: &RecordSource, row: &Row) -> Result<Mapped, RecordError> {
    let r = FieldReader {
        row,
        origin,
        date_order: mapping.date_order,
        decimal_separator: mapping.decimal_separator,
    };
    if !mapping.platform.is_empty() {
        match r.name(&mapping.platform)? {
            Some(platform) if is_platform(&platform, &mapping.platform_value) => {}
            Some(platform) => return Ok(Mapped::SkippedPlatform(platform)),
            None if mapping.empty_platform == EmptyPlatform::Import => {}
            None => return Ok(Mapped::SkippedPlatform(String::new())),
        }
    }

    let order_number = r.text(&mapping.order_number)?;
    let order_number = r.required(
        &mapping.order_number,
        "the StockX order number",
        order_number,
    )?;
    // From here on, an error names the order it belongs to.
    map_sale(&r, mapping, origin, &order_number)
        .map(|sale| Mapped::Sale(Box::new(sale)))
        .map_err(|e| RecordError {
            order_number: Some(Box::new(order_number.clone())),
            ..e
        })
}

/// The rest of a sale once its order number is known.
fn map_sale(
    r: &FieldReader<'_>,
    mapping: &Mapping,
    origin: &RecordSource,
    order_number: &str,
) -> Result<SaleRecord, RecordError> {
    let sku = match r.text(&mapping.sku)? {
        Some(sku) => sku,
        None if !mapping.sku_fallback.is_empty() && r.cell(&mapping.sku_fallback).is_some() => {
            let sku = r.text(&mapping.sku_fallback)?;
            r.required(&mapping.sku_fallback, "the SKU", sku)?
        }
        None => r.required(&mapping.sku, "the SKU", None)?,
    };
    let size_text = r.text(&mapping.size)?;
    let size_text = r.required(&mapping.size, "the size", size_text)?;
    let (size, size_region) = if mapping.size_region.is_empty() {
        split_size_region(&size_text)
    } else {
        (size_text, r.text(&mapping.size_region)?)
    };
    let supplier = r.name(&mapping.supplier)?;
    let supplier = r.required(&mapping.supplier, "the supplier", supplier)?;
    let purchase_price = r.money(&mapping.purchase_price)?;
    let purchase_price = r.required(
        &mapping.purchase_price,
        "the purchase price",
        purchase_price,
    )?;
    let net_proceeds = r.money(&mapping.net_proceeds)?;
    let net_proceeds = r.required(&mapping.net_proceeds, "the net proceeds", net_proceeds)?;
    let sold_at = r.date(&mapping.sold_at)?;
    let sold_at = r.required(&mapping.sold_at, "the sale date", sold_at)?;

    Ok(SaleRecord {
        source: origin.clone(),
        stockx_order_number: order_number.to_string(),
        sku,
        size,
        size_region,
        supplier,
        purchase_price,
        purchase_date: r.date(&mapping.purchase_date)?,
        sale_price: r.money(&mapping.sale_price)?,
        net_proceeds,
        profit: r.money(&mapping.profit)?,
        roi: r.percent(&mapping.roi)?,
        sold_at,
        delivered_at: r.date(&mapping.delivered_at)?,
        notes: r.text(&mapping.notes)?,
    })
}

/// Order numbers that occur more than once, with where each occurrence came from, in first
/// appearance order. An import must not silently let the last row win.
pub fn duplicate_order_numbers<'a>(
    sales: impl IntoIterator<Item = &'a SaleRecord>,
) -> Vec<(String, Vec<RecordSource>)> {
    let mut by_number: Vec<(String, Vec<RecordSource>)> = Vec::new();
    let mut index: std::collections::HashMap<&'a str, usize> = std::collections::HashMap::new();
    for sale in sales {
        match index.get(sale.stockx_order_number.as_str()) {
            Some(&i) => by_number[i].1.push(sale.source.clone()),
            None => {
                index.insert(&sale.stockx_order_number, by_number.len());
                by_number.push((sale.stockx_order_number.clone(), vec![sale.source.clone()]));
            }
        }
    }
    by_number.retain(|(_, sources)| sources.len() > 1);
    by_number
}

#[cfg(test)]
mod tests {
    use super::*;
    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }
    use time::macros::date;

    fn text_row(pairs: &[(&str, &str)]) -> Row {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Cell::Text(v.to_string())))
            .collect()
    }

    fn full_row() -> Vec<(&'static str, &'static str)> {
        vec![
            ("Sale ID", "75123456-75123457"),
            ("Name", "Jordan 1 Retro High OG Chicago"),
            ("SKU", "DZ5485-612"),
            ("Size", "US 10.5"),
            ("Supplier", "Foot Locker (https://www.notion.so/Foot-Locker-0123456789abcdef0123456789abcdef?pvs=21)"),
            ("Net Buy", "€1,234.56"),
            ("Net Sale", "€1,500.00"),
            ("Sale Price", "€1,650.00"),
            ("Profit", "€265.44"),
            ("ROI", "21.5%"),
            ("Purchase Date", "October 1, 2023"),
            ("Sale Date", "November 5, 2023 3:00 PM"),
            ("Delivery Date", ""),
            ("Sale Platform", "StockX"),
        ]
    }

    const ROW_5: RecordSource = RecordSource::CsvRow { row: 5 };

    #[test]
    fn a_full_row_becomes_a_sale() {
        let row = text_row(&full_row());
        let Mapped::Sale(sale) = map_row(&Mapping::default(), &ROW_5, &row).unwrap() else {
            panic!("not a sale")
        };
        assert_eq!(sale.stockx_order_number, "75123456-75123457");
        assert_eq!(sale.sku, "DZ5485-612");
        assert_eq!(
            (sale.size.as_str(), sale.size_region.as_deref()),
            ("10.5", Some("US"))
        );
        assert_eq!(sale.supplier, "Foot Locker");
        assert_eq!(sale.purchase_price, d("1234.56"));
        assert_eq!(sale.net_proceeds, d("1500.00"));
        assert_eq!(sale.sale_price, Some(d("1650.00")));
        assert_eq!(sale.profit, Some(d("265.44")));
        assert_eq!(sale.roi, Some(d("0.215")));
        assert_eq!(sale.purchase_date, Some(date!(2023 - 10 - 01)));
        assert_eq!(sale.sold_at, date!(2023 - 11 - 05));
        assert_eq!(sale.delivered_at, None);
        assert_eq!(sale.source, ROW_5);
    }

    #[test]
    fn other_platforms_and_empty_platform_are_skipped() {
        let mut pairs = full_row();
        pairs.retain(|(k, _)| *k != "Sale Platform");
        pairs.push(("Sale Platform", "GOAT"));
        let got = map_row(&Mapping::default(), &ROW_5, &text_row(&pairs)).unwrap();
        assert_eq!(got, Mapped::SkippedPlatform("GOAT".into()));

        pairs.pop();
        pairs.push(("Sale Platform", ""));
        let got = map_row(&Mapping::default(), &ROW_5, &text_row(&pairs)).unwrap();
        assert_eq!(got, Mapped::SkippedPlatform(String::new()));

        let import_empty = Mapping {
            empty_platform: EmptyPlatform::Import,
            ..Mapping::default()
        };
        assert!(matches!(
            map_row(&import_empty, &ROW_5, &text_row(&pairs)).unwrap(),
            Mapped::Sale(_)
        ));
    }

    #[test]
    fn platform_matches_case_insensitively() {
        let mut pairs = full_row();
        pairs.retain(|(k, _)| *k != "Sale Platform");
        pairs.push(("Sale Platform", " stockx "));
        assert!(matches!(
            map_row(&Mapping::default(), &ROW_5, &text_row(&pairs)).unwrap(),
            Mapped::Sale(_)
        ));
    }

    #[test]
    fn sku_falls_back_to_name() {
        let mut pairs = full_row();
        pairs.retain(|(k, _)| *k != "SKU");
        let Mapped::Sale(sale) = map_row(&Mapping::default(), &ROW_5, &text_row(&pairs)).unwrap()
        else {
            panic!("not a sale")
        };
        assert_eq!(sale.sku, "Jordan 1 Retro High OG Chicago");
    }

    #[test]
    fn errors_name_row_column_and_value() {
        let mut pairs = full_row();
        pairs.retain(|(k, _)| *k != "Net Buy");
        pairs.push(("Net Buy", "twelve euros"));
        let e = map_row(&Mapping::default(), &ROW_5, &text_row(&pairs)).unwrap_err();
        assert_eq!(e.column.as_deref(), Some("Net Buy"));
        assert_eq!(e.raw.as_deref(), Some("twelve euros"));
        let text = e.to_string();
        assert!(text.starts_with("row 5, column \"Net Buy\""), "{text}");
    }

    #[test]
    fn missing_required_value_names_the_column() {
        let mut pairs = full_row();
        pairs.retain(|(k, _)| *k != "Sale Date");
        pairs.push(("Sale Date", " "));
        let e = map_row(&Mapping::default(), &ROW_5, &text_row(&pairs)).unwrap_err();
        assert_eq!(e.column.as_deref(), Some("Sale Date"));
        assert!(e.message.contains("required"), "{e}");
    }

    #[test]
    fn typed_cells_from_the_api() {
        let mut row = text_row(&full_row());
        row.insert("Net Buy", Cell::Number(d("100.5")));
        row.insert("ROI", Cell::Number(d("0.25")));
        row.insert("Sale Date", Cell::Date(date!(2024 - 01 - 02)));
        row.insert("Supplier", Cell::Names(vec!["Nike".into()]));
        row.insert("Sale Platform", Cell::Names(vec!["StockX".into()]));
        row.insert("Size", Cell::Number(d("10.5")));
        let Mapped::Sale(sale) = map_row(&Mapping::default(), &ROW_5, &row).unwrap() else {
            panic!("not a sale")
        };
        assert_eq!(sale.purchase_price, d("100.5"));
        assert_eq!(sale.roi, Some(d("0.25")));
        assert_eq!(sale.sold_at, date!(2024 - 01 - 02));
        assert_eq!(sale.supplier, "Nike");
        assert_eq!((sale.size.as_str(), sale.size_region), ("10.5", None));
    }

    #[test]
    fn check_columns_lists_what_the_source_has() {
        let available: Vec<String> = ["Sale ID", "Name", "Size", "Supplier"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let e = check_columns(&Mapping::default(), &available).unwrap_err();
        let MappingError::MissingColumns { missing, .. } = &e;
        assert!(missing
            .iter()
            .any(|(f, c)| f == "purchase_price" && c == "Net Buy"));
        assert!(
            !missing.iter().any(|(f, _)| f == "sku"),
            "Name is the SKU fallback"
        );
        let text = e.to_string();
        assert!(
            text.contains("\"Net Buy\"") && text.contains("it has: Sale ID, Name, Size, Supplier"),
            "{text}"
        );

        let all: Vec<String> = full_row().iter().map(|(k, _)| k.to_string()).collect();
        check_columns(&Mapping::default(), &all).unwrap();
    }

    #[test]
    fn optional_columns_at_default_names_may_be_absent() {
        let available: Vec<String> = full_row()
            .iter()
            .map(|(k, _)| k.to_string())
            .filter(|k| {
                ![
                    "Sale Price",
                    "Profit",
                    "ROI",
                    "Delivery Date",
                    "Purchase Date",
                ]
                .contains(&k.as_str())
            })
            .collect();
        check_columns(&Mapping::default(), &available).unwrap();
        let mapping = Mapping::default();
        let absent: Vec<&str> = absent_optional_columns(&mapping, &available)
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        assert_eq!(
            absent,
            [
                "Purchase Date",
                "Sale Price",
                "Profit",
                "ROI",
                "Delivery Date"
            ]
        );
        let pairs: Vec<(&str, &str)> = full_row()
            .into_iter()
            .filter(|(k, _)| available.iter().any(|a| a == k))
            .collect();
        let Mapped::Sale(sale) = map_row(&Mapping::default(), &ROW_5, &text_row(&pairs)).unwrap()
        else {
            panic!("not a sale")
        };
        assert_eq!((sale.sale_price, sale.profit, sale.roi), (None, None, None));

        // A column named on purpose must exist; so must a required one at its default name.
        let renamed = Mapping {
            profit: "Gain".into(),
            ..Mapping::default()
        };
        let e = check_columns(&renamed, &available).unwrap_err();
        assert!(e.to_string().contains("\"Gain\" (mapped as profit)"), "{e}");
        let without_net_sale: Vec<String> = available
            .iter()
            .filter(|c| *c != "Net Sale")
            .cloned()
            .collect();
        let e = check_columns(&Mapping::default(), &without_net_sale).unwrap_err();
        assert!(e.to_string().contains("\"Net Sale\""), "{e}");
        assert!(!e.to_string().contains("Profit"), "{e}");
    }

    #[test]
    fn mapping_from_toml_with_defaults() {
        let mapping: Mapping = toml::from_str(
            "order_number = \"Order #\"\nempty_platform = \"import\"\ndate_order = \"day_first\"\n",
        )
        .unwrap();
        assert_eq!(mapping.order_number, "Order #");
        assert_eq!(mapping.sku, "SKU");
        assert_eq!(mapping.platform_value, "StockX");
        assert_eq!(mapping.empty_platform, EmptyPlatform::Import);
        assert_eq!(mapping.date_order, DateOrder::DayFirst);
        assert!(
            toml::from_str::<Mapping>("sku_column = \"x\"").is_err(),
            "unknown keys are refused"
        );
    }

    #[test]
    fn size_regions() {
        assert_eq!(
            split_size_region("US W 8"),
            ("8".into(), Some("US W".into()))
        );
        assert_eq!(
            split_size_region("EU 44 2/3"),
            ("44 2/3".into(), Some("EU".into()))
        );
        assert_eq!(split_size_region("10.5"), ("10.5".into(), None));
        assert_eq!(split_size_region("US"), ("US".into(), None));
    }
}
