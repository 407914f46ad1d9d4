//! Notion property values as the API sends them, and how each becomes a [`Cell`] of the
//! generic row the mapping reads. Pure functions over JSON, kept apart from the client so that
//! every property type Notion has can be tested without a server.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;

use super::row::Cell;
use super::values::{self, DateOrder};

/// A property value as the API sends it, typed for the types a sales table uses; anything
/// else is kept as raw JSON. Built leniently: a shape that does not match becomes `Unknown`.
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyValue {
    Title(String),
    RichText(String),
    Number(Option<Decimal>),
    Select(Option<String>),
    Status(Option<String>),
    MultiSelect(Vec<String>),
    /// The start of the date (ranges give their start), as written in its offset.
    Date(Option<time::Date>),
    Formula(Box<PropertyValue>),
    Rollup(Box<PropertyValue>),
    /// Related page IDs; `has_more` when Notion truncated the list at 25.
    Relation {
        ids: Vec<String>,
        has_more: bool,
    },
    Checkbox(bool),
    /// url, email, phone_number, unique_id (`PREFIX-123`), created/last edited time.
    Text(Option<String>),
    /// A rollup array or people list, each item as text.
    List(Vec<String>),
    Unknown(Value),
}

impl PropertyValue {
    pub fn from_json(raw: &Value) -> Self {
        let kind = raw.get("type").and_then(Value::as_str).unwrap_or_default();
        match Self::typed(kind, raw.get(kind).unwrap_or(&Value::Null)) {
            Some(Self::Relation { ids, .. }) => Self::Relation {
                ids,
                has_more: raw
                    .get("has_more")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            },
            Some(typed) => typed,
            None => Self::Unknown(raw.clone()),
        }
    }

    fn typed(kind: &str, value: &Value) -> Option<Self> {
        let name_of = |v: &Value| v.get("name").and_then(Value::as_str).map(str::to_string);
        Some(match kind {
            "title" => Self::Title(plain_text(value)?),
            "rich_text" => Self::RichText(plain_text(value)?),
            "number" => Self::Number(json_decimal(value)?),
            "select" => Self::Select(if value.is_null() {
                None
            } else {
                Some(name_of(value)?)
            }),
            "status" => Self::Status(if value.is_null() {
                None
            } else {
                Some(name_of(value)?)
            }),
            "multi_select" => {
                Self::MultiSelect(value.as_array()?.iter().filter_map(name_of).collect())
            }
            "date" => Self::Date(json_date(value)?),
            "checkbox" => Self::Checkbox(value.as_bool()?),
            "relation" => Self::Relation {
                ids: value
                    .as_array()?
                    .iter()
                    .filter_map(|r| r.get("id")?.as_str().map(str::to_string))
                    .collect(),
                // Set by `from_json`: the flag sits beside the list, not inside it.
                has_more: false,
            },
            "formula" | "rollup" => {
                let inner_kind = value.get("type").and_then(Value::as_str)?;
                let inner = value.get(inner_kind).unwrap_or(&Value::Null);
                let typed = match inner_kind {
                    "string" => Self::Text(inner.as_str().map(str::to_string)),
                    "boolean" => Self::Checkbox(inner.as_bool().unwrap_or(false)),
                    "array" => Self::List(
                        inner
                            .as_array()?
                            .iter()
                            .filter_map(|item| Self::from_json(item).display())
                            .collect(),
                    ),
                    other => Self::typed(other, inner)?,
                };
                if kind == "formula" {
                    Self::Formula(Box::new(typed))
                } else {
                    Self::Rollup(Box::new(typed))
                }
            }
            "url" | "email" | "phone_number" | "created_time" | "last_edited_time" => {
                Self::Text(value.as_str().map(str::to_string))
            }
            "unique_id" => {
                let number = value.get("number")?.as_i64()?;
                Self::Text(Some(match value.get("prefix").and_then(Value::as_str) {
                    Some(prefix) => format!("{prefix}-{number}"),
                    None => number.to_string(),
                }))
            }
            "people" => Self::List(value.as_array()?.iter().filter_map(name_of).collect()),
            _ => return None,
        })
    }

    /// The value as display text, for list items.
    fn display(&self) -> Option<String> {
        match self.to_cell() {
            Cell::Text(t) => Some(t),
            Cell::Number(n) => Some(n.normalize().to_string()),
            Cell::Date(d) => Some(d.to_string()),
            Cell::Names(n) if !n.is_empty() => Some(n.join(", ")),
            Cell::Checkbox(b) => Some(if b { "Yes" } else { "No" }.into()),
            _ => None,
        }
    }

    /// The generic cell the mapping reads. Relations become their IDs here; the client
    /// replaces mapped relations by titles.
    pub fn to_cell(&self) -> Cell {
        let text = |t: &Option<String>| {
            t.as_ref()
                .filter(|t| !t.trim().is_empty())
                .map_or(Cell::Empty, |t| Cell::Text(t.clone()))
        };
        match self {
            Self::Title(t) | Self::RichText(t) => text(&Some(t.clone())),
            Self::Text(t) => text(t),
            Self::Number(n) => n.map_or(Cell::Empty, Cell::Number),
            Self::Select(s) | Self::Status(s) => s
                .as_ref()
                .map_or(Cell::Empty, |s| Cell::Names(vec![s.clone()])),
            Self::MultiSelect(names) | Self::List(names) => Cell::Names(names.clone()),
            Self::Date(d) => d.map_or(Cell::Empty, Cell::Date),
            Self::Formula(inner) | Self::Rollup(inner) => inner.to_cell(),
            Self::Relation { ids, .. } => Cell::Names(ids.clone()),
            Self::Checkbox(b) => Cell::Checkbox(*b),
            Self::Unknown(raw) => Cell::Raw(raw.clone()),
        }
    }
}

fn plain_text(value: &Value) -> Option<String> {
    Some(
        value
            .as_array()?
            .iter()
            .filter_map(|item| item.get("plain_text").and_then(Value::as_str))
            .collect(),
    )
}

/// A JSON number as a decimal, without going through `f64` (serde_json keeps the literal).
fn json_decimal(value: &Value) -> Option<Option<Decimal>> {
    match value {
        Value::Null => Some(None),
        Value::Number(n) => {
            let text = n.to_string();
            Decimal::from_str(&text)
                .or_else(|_| Decimal::from_scientific(&text))
                .ok()
                .map(Some)
        }
        _ => None,
    }
}

fn json_date(value: &Value) -> Option<Option<time::Date>> {
    if value.is_null() {
        return Some(None);
    }
    let start = value.get("start")?.as_str()?;
    values::parse_date(start, DateOrder::MonthFirst).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::date;

    #[test]
    fn property_values_are_typed_leniently() {
        let p = |v: Value| PropertyValue::from_json(&v);
        assert_eq!(
            p(json!({"type": "title", "title": [{"plain_text": "7512"}, {"plain_text": "-3456"}]})),
            PropertyValue::Title("7512-3456".into())
        );
        assert_eq!(
            p(json!({"type": "number", "number": 1234.56})),
            PropertyValue::Number(Some("1234.56".parse().unwrap()))
        );
        assert_eq!(
            p(json!({"type": "number", "number": null})),
            PropertyValue::Number(None)
        );
        assert_eq!(
            p(
                json!({"type": "date", "date": {"start": "2025-11-05T23:30:00.000+01:00", "end": null}})
            ),
            PropertyValue::Date(Some(date!(2025 - 11 - 05)))
        );
        assert_eq!(
            p(json!({"type": "formula", "formula": {"type": "number", "number": 0.25}})).to_cell(),
            Cell::Number("0.25".parse().unwrap())
        );
        assert_eq!(
            p(json!({"type": "rollup", "rollup": {"type": "array", "function": "show_original", "array": [{"type": "rich_text", "rich_text": [{"plain_text": "Nike"}]}]}})).to_cell(),
            Cell::Names(vec!["Nike".into()])
        );
        assert_eq!(
            p(json!({"type": "select", "select": {"name": "StockX"}})).to_cell(),
            Cell::Names(vec!["StockX".into()])
        );
        assert_eq!(
            p(json!({"type": "unique_id", "unique_id": {"prefix": "SALE", "number": 7}})).to_cell(),
            Cell::Text("SALE-7".into())
        );
        assert_eq!(
            p(json!({"type": "relation", "relation": [{"id": "r1"}], "has_more": true})),
            PropertyValue::Relation {
                ids: vec!["r1".into()],
                has_more: true
            }
        );
        let odd = json!({"type": "verification", "verification": {"state": "verified"}});
        assert_eq!(p(odd.clone()), PropertyValue::Unknown(odd));
        let wrong_shape = json!({"type": "number", "number": "12"});
        assert_eq!(p(wrong_shape.clone()), PropertyValue::Unknown(wrong_shape));
    }
}
