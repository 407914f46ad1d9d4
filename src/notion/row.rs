//! The generic row both Notion readers produce: the API client (typed property values) and the
//! export reader (text cells). The mapping reads only this shape, so one set of rules turns
//! either source into a sale.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use time::Date;

use super::values;

/// One value of a row, typed as far as the source knows: export cells are always `Text`, API
/// properties are typed by their property type.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    /// Display text (export cells, titles, rich text, URLs, formula strings).
    Text(String),
    /// A number as stored (a percent column holds the fraction).
    Number(Decimal),
    Date(Date),
    Checkbox(bool),
    /// Select/status/multi-select option names, or relation titles.
    Names(Vec<String>),
    /// A property type not modelled here, as the API sent it.
    Raw(serde_json::Value),
}

/// A generic row: property name (column header) → value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    cells: BTreeMap<String, Cell>,
}

impl Row {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, column: impl Into<String>, cell: Cell) {
        self.cells.insert(column.into(), cell);
    }

    pub fn get(&self, column: &str) -> Option<&Cell> {
        self.cells.get(column)
    }

    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.cells.keys().map(String::as_str)
    }

    /// True when every cell is empty (such rows are skipped by the export reader).
    pub fn is_blank(&self) -> bool {
        self.cells.values().all(|c| match c {
            Cell::Empty => true,
            Cell::Text(t) => values::non_empty(t).is_none(),
            Cell::Names(n) => n.is_empty(),
            _ => false,
        })
    }
}

impl FromIterator<(String, Cell)> for Row {
    fn from_iter<I: IntoIterator<Item = (String, Cell)>>(iter: I) -> Self {
        Self {
            cells: iter.into_iter().collect(),
        }
    }
}
