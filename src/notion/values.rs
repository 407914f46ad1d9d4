//! Parsers for values as Notion renders them in a "Markdown & CSV" export (and, for dates and
//! numbers, as the API sends them). Exports carry display text, not typed values: money comes
//! with currency symbols and locale-dependent separators, dates follow each property's date
//! format, relations are `Title (URL)` lists. Everything here is a pure function from text to a
//! typed value or a [`ValueError`] that says what could not be read; the mapping decides which
//! parser a column needs and which column an error belongs to.
//!
//! Rules chosen (from the forms seen in real exports):
//! - **Decimal separator.** The last `.` or `,` is the decimal separator when it is followed by
//!   1, 2 or 4+ digits, or when both kinds occur (`1.234,56`, `1,234.56`). A kind that occurs
//!   more than once is grouping (`1,234,567`). A single separator followed by exactly three
//!   digits (`1,234` / `1.234`) is ambiguous: [`Ambiguity::Thousands`] (money: Notion's currency
//!   formats group thousands) reads it as grouping unless the integer part is `0`;
//!   [`Ambiguity::Decimal`] (percentages, ratios) reads it as a decimal. When the export's
//!   locale is known, [`DecimalSeparator::Dot`] / [`DecimalSeparator::Comma`] fix the separator
//!   and settle that case too.
//! - **Dates.** The time of day and any `(GMT+2)` zone are dropped: the date is taken as
//!   written. Ranges (`A → B`) give their start. Numeric dates with both parts ≤ 12 follow the
//!   configured [`DateOrder`]; otherwise the part > 12 is the day.
//! - Empty cells (only whitespace) are `None`, never an error.

use std::str::FromStr;

use rust_decimal::Decimal;
use time::{Date, Month};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// What could not be parsed, with the raw text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read {raw:?} as {expected}: {reason}")]
pub struct ValueError {
    /// The kind of value expected (`"a date"`, `"an amount"`, ...).
    pub expected: &'static str,
    /// The raw text as found.
    pub raw: String,
    /// Why it was refused.
    pub reason: String,
}

impl ValueError {
    fn new(expected: &'static str, raw: &str, reason: impl Into<String>) -> Self {
        Self {
            expected,
            raw: raw.to_string(),
            reason: reason.into(),
        }
    }
}

/// How to read a single separator followed by exactly three digits (`1,234`, `1.234`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ambiguity {
    /// As a thousands separator (`1,234` = 1234): the right reading for money.
    Thousands,
    /// As a decimal separator (`1.234` = 1.234): the right reading for ratios.
    Decimal,
}

/// Which character is the decimal separator in money and percentages. `Auto` decides by
/// position (the module's rule); `Dot`/`Comma` fix it for exports whose locale is known, which
/// also settles `1,234` / `1.234`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecimalSeparator {
    #[default]
    Auto,
    Dot,
    Comma,
}

/// Order of day and month in numeric dates such as `03/02/2025`, used only when both parts
/// are ≤ 12 (otherwise the value itself decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DateOrder {
    /// Notion's `Month/Day/Year` format (the US default).
    #[default]
    MonthFirst,
    /// Notion's `Day/Month/Year` format.
    DayFirst,
}

/// Cell text trimmed (including non-breaking spaces and a stray BOM), or `None` when empty.
pub fn non_empty(raw: &str) -> Option<&str> {
    let trimmed = raw.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    (!trimmed.is_empty()).then_some(trimmed)
}

/// Money as Notion renders it: `€1,234.56`, `1.234,56 €`, `$99`, `-€5.00`, `EUR 12,50`,
/// `(5.00)`, `₱1,234.56`, `R$ 10,00`, `CHF 12.50`, `12,50 zł`. Any currency symbol Unicode
/// knows and any currency code or short local abbreviation is dropped (see
/// [`is_currency_word`]; the amount's currency is the business's); a single ambiguous
/// separator is a thousands separator.
pub fn parse_money(raw: &str) -> Result<Option<Decimal>, ValueError> {
    parse_money_in(raw, DecimalSeparator::Auto)
}

/// [`parse_money`] with a known decimal separator.
pub fn parse_money_in(
    raw: &str,
    separator: DecimalSeparator,
) -> Result<Option<Decimal>, ValueError> {
    let Some(text) = non_empty(raw) else {
        return Ok(None);
    };
    parse_number(text, Ambiguity::Thousands, separator, "an amount").map(Some)
}

/// A plain number cell, reading an ambiguous separator as the caller says.
pub fn parse_decimal(raw: &str, ambiguity: Ambiguity) -> Result<Option<Decimal>, ValueError> {
    let Some(text) = non_empty(raw) else {
        return Ok(None);
    };
    parse_number(text, ambiguity, DecimalSeparator::Auto, "a number").map(Some)
}

/// A percentage as a fraction: `25%` → 0.25, `25.5 %` → 0.255, `12,5%` → 0.125. Without a `%`
/// sign the cell is a number column holding the fraction already: `0.25` stays 0.25.
pub fn parse_percent(raw: &str) -> Result<Option<Decimal>, ValueError> {
    parse_percent_in(raw, DecimalSeparator::Auto)
}

/// [`parse_percent`] with a known decimal separator.
pub fn parse_percent_in(
    raw: &str,
    separator: DecimalSeparator,
) -> Result<Option<Decimal>, ValueError> {
    let Some(text) = non_empty(raw) else {
        return Ok(None);
    };
    match text.strip_suffix('%') {
        Some(number) => {
            let value = parse_number(number.trim(), Ambiguity::Decimal, separator, "a percentage")
                .map_err(|e| ValueError {
                    raw: text.to_string(),
                    ..e
                })?;
            Ok(Some(value / Decimal::ONE_HUNDRED))
        }
        None => parse_number(text, Ambiguity::Decimal, separator, "a percentage").map(Some),
    }
}

fn parse_number(
    text: &str,
    ambiguity: Ambiguity,
    separator: DecimalSeparator,
    expected: &'static str,
) -> Result<Decimal, ValueError> {
    let err = |reason: &str| ValueError::new(expected, text, reason);
    let (Some(first_digit), Some(last_digit)) = (
        text.find(|c: char| c.is_ascii_digit()),
        text.rfind(|c: char| c.is_ascii_digit()),
    ) else {
        return Err(err("no digits"));
    };
    // A separator right before the first digit belongs to the number (`.5`), unless it ends
    // a currency abbreviation (`руб.5` is not written, `د.إ` ends in a letter).
    let mut start = first_digit;
    let mut before = text[..start].chars().rev();
    if let Some(sep @ ('.' | ',')) = before.next() {
        if !before.next().is_some_and(char::is_alphabetic) {
            start -= sep.len_utf8();
        }
    }
    let (prefix, core, suffix) = (
        &text[..start],
        &text[start..=last_digit],
        &text[last_digit + 1..],
    );

    let mut body = String::with_capacity(core.len());
    for c in core.chars() {
        match c {
            '0'..='9' | '.' | ',' => body.push(c),
            // Grouping used by some locales (`1 234,56`, `1'234.56`).
            c if c.is_whitespace() || c == '\'' || c == '\u{2019}' => {}
            '-' | '\u{2212}' => return Err(err("a minus sign inside the number")),
            c if c.is_alphabetic() || is_currency_symbol(c) => {
                return Err(err("letters between the digits"))
            }
            c => return Err(err(&format!("unexpected character {c:?}"))),
        }
    }

    let mut negative = false;
    for (part, is_prefix) in [(prefix, true), (suffix, false)] {
        let mut word = String::new();
        let check_word = |word: &mut String| -> Result<(), ValueError> {
            if !word.is_empty() && !is_currency_word(word) {
                return Err(err(&format!("{word:?} is not a currency")));
            }
            word.clear();
            Ok(())
        };
        for c in part.chars() {
            match c {
                '-' | '\u{2212}' if is_prefix => {
                    if negative {
                        return Err(err("two minus signs"));
                    }
                    negative = true;
                    check_word(&mut word)?;
                }
                '(' if is_prefix => negative = true,
                ')' if !is_prefix => negative = true,
                '+' if is_prefix => check_word(&mut word)?,
                c if c.is_whitespace() => check_word(&mut word)?,
                c => word.push(c),
            }
        }
        check_word(&mut word)?;
    }
    let normalised = normalise_separators(&body, ambiguity, separator)
        .ok_or_else(|| err("misplaced separators"))?;
    let value = Decimal::from_str(&normalised).map_err(|e| err(&e.to_string()))?;
    Ok(if negative { -value } else { value })
}

/// A character of Unicode's currency-symbol category (Sc): `$ € £ ¥ ₱ ₹ ₪ ฿ ₵ ﷼` and every
/// other sign Unicode knows, without a list here to keep up to date.
fn is_currency_symbol(c: char) -> bool {
    c.general_category() == GeneralCategory::CurrencySymbol
}

/// A word next to an amount that names its currency: symbols (Sc), symbols with a country
/// prefix (`R$`, `US$`, `HK$`), ISO 4217 codes (`CHF`, `PLN`; every code is three letters) and
/// the short local abbreviations Notion and CLDR render (`zł`, `Kč`, `kr`, `Ft`, `lei`, `Rp`,
/// `RM`, `S/`, `руб.`, `د.إ`). Longer words (`euros`, `twelve`) are not currencies.
fn is_currency_word(word: &str) -> bool {
    let mut letters = 0;
    let mut marks = 0;
    for c in word.chars() {
        if c.is_alphabetic() {
            letters += 1;
        } else if is_currency_symbol(c) {
            marks += 1;
        } else if c == '.' || c == '/' {
            // Abbreviation dots and the `/` of `S/`; never a word alone.
        } else {
            return false;
        }
    }
    letters <= 3 && letters + marks > 0
}

/// Digits with `.`/`,` → digits with at most one `.` as decimal point, or `None` when the
/// separators cannot be a number (`1,2,3`, `1.234.5`).
fn normalise_separators(
    body: &str,
    ambiguity: Ambiguity,
    separator: DecimalSeparator,
) -> Option<String> {
    let other = |c: char| if c == '.' { ',' } else { '.' };
    let decimal_sep = match separator {
        DecimalSeparator::Dot => body.contains('.').then_some('.'),
        DecimalSeparator::Comma => body.contains(',').then_some(','),
        DecimalSeparator::Auto => auto_decimal_separator(body, ambiguity),
    };
    let (integer, fraction, group_sep) = match decimal_sep {
        Some(d) => {
            let at = body.rfind(d)?;
            (&body[..at], Some(&body[at + 1..]), other(d))
        }
        None => {
            let group = match separator {
                DecimalSeparator::Dot => ',',
                DecimalSeparator::Comma => '.',
                DecimalSeparator::Auto => {
                    body.chars().find(|c| *c == '.' || *c == ',').unwrap_or(',')
                }
            };
            (body, None, group)
        }
    };
    let groups: Vec<&str> = integer.split(group_sep).collect();
    if groups.iter().any(|g| g.contains(['.', ','])) {
        return None;
    }
    if groups.len() > 1 {
        let first_ok = (1..=3).contains(&groups[0].len());
        let rest_ok = groups[1..].iter().all(|g| g.len() == 3);
        if !first_ok || !rest_ok {
            return None;
        }
    }
    let mut out: String = groups.concat();
    if out.is_empty() {
        out.push('0');
    }
    if let Some(fraction) = fraction {
        if fraction.contains(['.', ',']) {
            return None;
        }
        if !fraction.is_empty() {
            out.push('.');
            out.push_str(fraction);
        }
    }
    Some(out)
}

/// The decimal separator by position (the module's rule), `None` when there is none.
fn auto_decimal_separator(body: &str, ambiguity: Ambiguity) -> Option<char> {
    let last = body.rfind(['.', ','])?;
    let last_sep = if body.as_bytes()[last] == b'.' {
        '.'
    } else {
        ','
    };
    let other = if last_sep == '.' { ',' } else { '.' };
    let (before, after) = (&body[..last], &body[last + 1..]);
    if before.contains(other) {
        // Both kinds: the last one is the decimal separator.
        Some(last_sep)
    } else if before.contains(last_sep) {
        // The same kind more than once: grouping only.
        None
    } else if after.len() == 3 {
        let integer_is_zero = !before.is_empty() && before.bytes().all(|b| b == b'0');
        match ambiguity {
            Ambiguity::Thousands if !integer_is_zero => None,
            _ => Some(last_sep),
        }
    } else {
        Some(last_sep)
    }
}

/// A date as Notion renders or sends it → the calendar date as written.
///
/// Accepted: `November 5, 2023`, `Nov 5, 2023`, `Sept 5, 2023`, `5 November 2023`, with an
/// optional time (`3:00 PM`, `13:49`) and zone (`(GMT+2)`, `(PDT)`), a leading `@` (date
/// mentions), ISO `2023-11-05` and `2023-11-05T15:00:00.000Z` / `…+01:00`, numeric
/// `11/05/2023` / `05/11/2023` (see [`DateOrder`]), `2023/11/05`, and ranges `A → B` (start).
pub fn parse_date(raw: &str, order: DateOrder) -> Result<Option<Date>, ValueError> {
    let Some(text) = non_empty(raw) else {
        return Ok(None);
    };
    let err = |reason: &str| ValueError::new("a date", text, reason);
    let mut s = text.trim_start_matches('@').trim();
    if let Some((start, _)) = s.split_once('→') {
        s = start.trim();
    }
    if let Some(open) = s.rfind('(') {
        if s.ends_with(')') {
            s = s[..open].trim();
        }
    }
    if s.len() >= 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[..4].iter().all(u8::is_ascii_digit)
    {
        return parse_iso_date(s)
            .map(Some)
            .ok_or_else(|| err("not an ISO date"));
    }
    let (date_part, time_part) = match s.split_once(' ') {
        Some((d, t)) if d.contains('/') => (d, Some(t)),
        _ => (s, None),
    };
    if date_part.contains('/') {
        if let Some(t) = time_part {
            check_time(t).ok_or_else(|| err("unreadable time of day"))?;
        }
        return parse_numeric_date(date_part, order)
            .map(Some)
            .map_err(|r| err(&r));
    }
    parse_text_date(s).map(Some).map_err(|r| err(&r))
}

fn parse_iso_date(s: &str) -> Option<Date> {
    let head = s.get(..10)?;
    let rest = &s[10..];
    if !(rest.is_empty() || rest.starts_with('T') || rest.starts_with(' ')) {
        return None;
    }
    let mut parts = head.split('-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let day: u8 = parts.next()?.parse().ok()?;
    Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()
}

fn parse_numeric_date(s: &str, order: DateOrder) -> Result<Date, String> {
    let parts: Vec<&str> = s.split('/').collect();
    let [a, b, c] = parts[..] else {
        return Err("expected three numbers separated by /".into());
    };
    let num = |p: &str| {
        p.parse::<u32>()
            .map_err(|_| format!("{p:?} is not a number"))
    };
    let (a, b, c) = (num(a)?, num(b)?, num(c)?);
    let (year, month, day) = if parts[0].len() == 4 {
        (a, b, c)
    } else if a > 12 {
        (c, b, a)
    } else if b > 12 {
        (c, a, b)
    } else {
        match order {
            DateOrder::MonthFirst => (c, a, b),
            DateOrder::DayFirst => (c, b, a),
        }
    };
    let year = if year < 100 { year + 2000 } else { year };
    make_date(year, month, day)
}

fn make_date(year: u32, month: u32, day: u32) -> Result<Date, String> {
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or_else(|| format!("month {month} does not exist"))?;
    let year = i32::try_from(year).map_err(|_| "year out of range".to_string())?;
    let day = u8::try_from(day).map_err(|_| format!("day {day} does not exist"))?;
    Date::from_calendar_date(year, month, day)
        .map_err(|_| format!("{month} {day}, {year} does not exist"))
}

fn month_from_name(word: &str) -> Option<u32> {
    const NAMES: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let word = word.trim_end_matches('.').to_lowercase();
    if word.len() < 3 {
        return None;
    }
    let word = if word == "sept" {
        "sep".to_string()
    } else {
        word
    };
    NAMES
        .iter()
        .position(|name| name.starts_with(word.as_str()))
        .map(|i| i as u32 + 1)
}

/// `3:00`, `15:00`, `3:00 PM`, `3:00PM`, `15:00:07`.
fn check_time(s: &str) -> Option<()> {
    let s = s.trim();
    let lower = s.to_ascii_lowercase();
    let clock = lower
        .strip_suffix("am")
        .or_else(|| lower.strip_suffix("pm"))
        .unwrap_or(&lower)
        .trim();
    let mut parts = clock.split(':');
    let hour: u32 = parts.next()?.parse().ok()?;
    let minute: u32 = parts.next()?.parse().ok()?;
    if let Some(second) = parts.next() {
        second.parse::<u32>().ok()?;
    }
    (hour < 24 && minute < 60 && parts.next().is_none()).then_some(())
}

fn parse_text_date(s: &str) -> Result<Date, String> {
    let mut month = None;
    let mut day = None;
    let mut year = None;
    let mut tokens = s.split([' ', ',']).filter(|t| !t.is_empty()).peekable();
    while let Some(token) = tokens.next() {
        if token.contains(':') {
            let mut time = token.to_string();
            if let Some(next) = tokens.peek() {
                if next.eq_ignore_ascii_case("am") || next.eq_ignore_ascii_case("pm") {
                    time.push_str(next);
                    tokens.next();
                }
            }
            check_time(&time).ok_or_else(|| format!("unreadable time of day {time:?}"))?;
        } else if token.chars().all(|c| c.is_ascii_digit()) {
            let value: u32 = token
                .parse()
                .map_err(|_| format!("{token:?} is not a number"))?;
            if token.len() == 4 && year.is_none() {
                year = Some(value);
            } else if token.len() <= 2 && day.is_none() {
                day = Some(value);
            } else {
                return Err(format!("unexpected number {token:?}"));
            }
        } else if let Some(m) = month_from_name(token).filter(|_| month.is_none()) {
            month = Some(m);
        } else {
            let ordinal = token
                .strip_suffix("st")
                .or_else(|| token.strip_suffix("nd"))
                .or_else(|| token.strip_suffix("rd"))
                .or_else(|| token.strip_suffix("th"))
                .and_then(|d| d.parse::<u32>().ok());
            match ordinal {
                Some(d) if day.is_none() => day = Some(d),
                _ => return Err(format!("unexpected word {token:?}")),
            }
        }
    }
    match (year, month, day) {
        (Some(y), Some(m), Some(d)) => make_date(y, m, d),
        (_, None, _) => Err("no month name".into()),
        (None, _, _) => Err("no four-digit year".into()),
        (_, _, None) => Err("no day of the month".into()),
    }
}

/// A relation cell as exported: `Title (https://www.notion.so/Title-<32 hex>?pvs=21)` items
/// joined by `, ` → the titles. Titles may contain commas and parentheses, so items are cut at
/// each `(<link>)` group rather than at commas. Text without links is returned whole.
pub fn parse_relation_titles(raw: &str) -> Vec<String> {
    let Some(text) = non_empty(raw) else {
        return Vec::new();
    };
    let mut titles = Vec::new();
    let mut rest = text;
    while let Some(open) = find_link_open(rest) {
        let title = rest[..open].trim().trim_start_matches(',').trim();
        let after_open = &rest[open + 1..];
        let close = after_open.find(')').map_or(after_open.len(), |i| i + 1);
        if !title.is_empty() {
            titles.push(title.to_string());
        }
        rest = after_open.get(close..).unwrap_or("");
    }
    let tail = rest.trim().trim_start_matches(',').trim();
    if !tail.is_empty() {
        titles.push(tail.to_string());
    }
    titles
}

/// Position of the `(` that opens a link group: `(http…`, `(www.…` or a relative `.md` path.
fn find_link_open(s: &str) -> Option<usize> {
    s.match_indices('(').map(|(i, _)| i).find(|&i| {
        let inner = &s[i + 1..];
        let end = inner.find(')').unwrap_or(inner.len());
        let inner = &inner[..end];
        inner.starts_with("http://")
            || inner.starts_with("https://")
            || inner.starts_with("www.")
            || inner.ends_with(".md")
    })
}

/// The single name of a relation or select cell: `Supplier Name (https://…)` → `Supplier Name`.
/// Several linked items are joined with `, `.
pub fn parse_relation_name(raw: &str) -> Option<String> {
    let titles = parse_relation_titles(raw);
    (!titles.is_empty()).then(|| titles.join(", "))
}

/// A select, status or multi-select cell → the option names. Multi-select names are joined
/// by `, ` in exports; names that themselves contain `, ` cannot be told apart (a Notion
/// limitation), so callers comparing against a known option should also try the whole text.
pub fn parse_select(raw: &str) -> Vec<String> {
    let Some(text) = non_empty(raw) else {
        return Vec::new();
    };
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A checkbox as exported (`Yes`/`No`) or sent (`true`/`false`).
pub fn parse_checkbox(raw: &str) -> Result<Option<bool>, ValueError> {
    let Some(text) = non_empty(raw) else {
        return Ok(None);
    };
    match text.to_ascii_lowercase().as_str() {
        "yes" | "true" | "✅" => Ok(Some(true)),
        "no" | "false" => Ok(Some(false)),
        _ => Err(ValueError::new("a checkbox", text, "expected Yes or No")),
    }
}

/// The 32-hex Notion ID at the end of a link, file name or URL path segment, in dashed UUID
/// form: `https://www.notion.so/Sales-0123…cdef?v=…` → `01234567-89ab-…`. Accepts IDs with or
/// without dashes.
pub fn extract_notion_id(text: &str) -> Option<String> {
    let text = text.trim();
    let without_query = text.split(['?', '#']).next().unwrap_or(text);
    let path_end = without_query
        .trim_end_matches('/')
        .trim_end_matches(".md")
        .trim_end_matches(".csv");
    let compact: String = path_end
        .chars()
        .rev()
        .filter(|c| *c != '-')
        .take_while(char::is_ascii_hexdigit)
        .take(32)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if compact.len() != 32 {
        return None;
    }
    // The 32 hex digits must be the end of a token: nothing hex-like glued on their left.
    let hex_with_dashes: usize = {
        let mut seen = 0;
        let mut chars = 0;
        for c in path_end.chars().rev() {
            if seen == 32 {
                break;
            }
            if c == '-' {
                chars += 1;
                continue;
            }
            seen += 1;
            chars += 1;
        }
        chars
    };
    let prefix = &path_end[..path_end.len() - hex_with_dashes];
    if prefix.chars().last().is_some_and(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let c = compact.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &c[..8],
        &c[8..12],
        &c[12..16],
        &c[16..20],
        &c[20..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }
    use time::macros::date;

    fn money(s: &str) -> Decimal {
        parse_money(s).unwrap().unwrap()
    }

    #[test]
    fn money_in_both_conventions() {
        assert_eq!(money("€1,234.56"), d("1234.56"));
        assert_eq!(money("1.234,56 €"), d("1234.56"));
        assert_eq!(money("$99"), d("99"));
        assert_eq!(money("99"), d("99"));
        assert_eq!(money("-€5.00"), d("-5.00"));
        assert_eq!(money("€-5.00"), d("-5.00"));
        assert_eq!(money("EUR 12,50"), d("12.50"));
        assert_eq!(money("1\u{a0}234,5 €"), d("1234.5"));
        assert_eq!(money("$1,234,567.8"), d("1234567.8"));
        assert_eq!(money("1.234.567"), d("1234567"));
        assert_eq!(money("(5.00)"), d("-5.00"));
        assert_eq!(money("CHF 1'234.50"), d("1234.50"));
        assert_eq!(money("0.5"), d("0.5"));
    }

    #[test]
    fn money_in_any_currency_unicode_knows() {
        assert_eq!(money("₱1,234.56"), d("1234.56"));
        assert_eq!(money("R$ 1.234,56"), d("1234.56"));
        assert_eq!(money("R$1.234,56"), d("1234.56"));
        assert_eq!(money("CHF 12.50"), d("12.50"));
        assert_eq!(money("12,50 zł"), d("12.50"));
        assert_eq!(money("฿1,200"), d("1200"));
        assert_eq!(money("1 200 Kč"), d("1200"));
        assert_eq!(money("₴99,90"), d("99.90"));
        assert_eq!(money("US$ 5"), d("5"));
        assert_eq!(money("-₹ 1,000.50"), d("-1000.50"));
        assert_eq!(money("12 руб."), d("12"));
        assert_eq!(money("Rp 15.000"), d("15000"));
        assert_eq!(money("S/ 20.00"), d("20.00"));
        assert_eq!(money("PLN 7,5"), d("7.5"));
        for bad in ["12 euros", "twelve euros", "12 € euros", "€€5-", "5 %$"] {
            assert!(parse_money(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn money_with_a_single_three_digit_group_is_thousands() {
        assert_eq!(money("€1,234"), d("1234"));
        assert_eq!(money("1.234"), d("1234"));
        assert_eq!(money("0,125"), d("0.125"));
        assert_eq!(money("12.3456"), d("12.3456"));
    }

    #[test]
    fn a_known_decimal_separator_settles_ambiguity() {
        let comma = |s: &str| parse_money_in(s, DecimalSeparator::Comma).unwrap().unwrap();
        let dot = |s: &str| parse_money_in(s, DecimalSeparator::Dot).unwrap().unwrap();
        assert_eq!(comma("1,234"), d("1.234"));
        assert_eq!(comma("1.234"), d("1234"));
        assert_eq!(comma("€1.234.567,8"), d("1234567.8"));
        assert_eq!(dot("1.234"), d("1.234"));
        assert_eq!(dot("1,234"), d("1234"));
        assert!(parse_money_in("1.234,56", DecimalSeparator::Dot).is_err());
        assert_eq!(
            parse_percent_in("12,5%", DecimalSeparator::Comma).unwrap(),
            Some(d("0.125"))
        );
    }

    #[test]
    fn money_errors_name_the_raw_text() {
        for bad in [
            "abc",
            "12-3",
            "1,23,4.5",
            "€",
            "1.2.3,4,5",
            "1,2345.6",
            "12€x5",
        ] {
            let e = parse_money(bad).unwrap_err();
            assert_eq!(e.raw, bad, "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn empty_cells_are_none() {
        assert_eq!(parse_money("  ").unwrap(), None);
        assert_eq!(parse_percent("").unwrap(), None);
        assert_eq!(parse_date(" \u{a0}", DateOrder::MonthFirst).unwrap(), None);
        assert!(parse_relation_titles("").is_empty());
        assert!(parse_select("").is_empty());
    }

    #[test]
    fn percentages_become_fractions() {
        assert_eq!(parse_percent("25%").unwrap(), Some(d("0.25")));
        assert_eq!(parse_percent("25.5 %").unwrap(), Some(d("0.255")));
        assert_eq!(parse_percent("12,5%").unwrap(), Some(d("0.125")));
        assert_eq!(parse_percent("-3%").unwrap(), Some(d("-0.03")));
        assert_eq!(parse_percent("0.25").unwrap(), Some(d("0.25")));
        assert_eq!(parse_percent("1.125").unwrap(), Some(d("1.125")));
        assert!(parse_percent("x%").is_err());
    }

    #[test]
    fn dates_in_every_rendering() {
        let day = |s: &str| parse_date(s, DateOrder::MonthFirst).unwrap().unwrap();
        assert_eq!(day("November 5, 2023"), date!(2023 - 11 - 05));
        assert_eq!(day("November 5, 2023 3:00 PM"), date!(2023 - 11 - 05));
        assert_eq!(day("June 6, 2023 13:49"), date!(2023 - 06 - 06));
        assert_eq!(day("Nov 5, 2023"), date!(2023 - 11 - 05));
        assert_eq!(day("Sept 5, 2023"), date!(2023 - 09 - 05));
        assert_eq!(day("5 November 2023"), date!(2023 - 11 - 05));
        assert_eq!(day("2023-11-05"), date!(2023 - 11 - 05));
        assert_eq!(day("2023-11-05T15:00:00.000Z"), date!(2023 - 11 - 05));
        assert_eq!(day("2023-11-05T23:30:00.000+01:00"), date!(2023 - 11 - 05));
        assert_eq!(
            day("November 5, 2023 → November 7, 2023"),
            date!(2023 - 11 - 05)
        );
        assert_eq!(
            day("November 5, 2025 11:20 AM (GMT+2)"),
            date!(2025 - 11 - 05)
        );
        assert_eq!(day("@November 1, 2025"), date!(2025 - 11 - 01));
        assert_eq!(day("April 18, 2025 16:17"), date!(2025 - 04 - 18));
        assert_eq!(day("30/01/2025"), date!(2025 - 01 - 30));
        assert_eq!(day("01/30/2025"), date!(2025 - 01 - 30));
        assert_eq!(day("11/05/2023 3:00 PM"), date!(2023 - 11 - 05));
        assert_eq!(day("2023/11/05"), date!(2023 - 11 - 05));
    }

    #[test]
    fn ambiguous_numeric_dates_follow_the_configured_order() {
        let first = parse_date("03/02/2025", DateOrder::MonthFirst).unwrap();
        let day_first = parse_date("03/02/2025", DateOrder::DayFirst).unwrap();
        assert_eq!(first, Some(date!(2025 - 03 - 02)));
        assert_eq!(day_first, Some(date!(2025 - 02 - 03)));
    }

    #[test]
    fn impossible_dates_are_errors() {
        for bad in [
            "February 30, 2023",
            "Smarch 5, 2023",
            "13/13/2023",
            "2023-13-01",
            "November 2023",
            "soon",
        ] {
            let e = parse_date(bad, DateOrder::MonthFirst).unwrap_err();
            assert_eq!(e.raw, bad);
        }
    }

    #[test]
    fn relations_keep_titles_and_drop_links() {
        assert_eq!(
            parse_relation_name("Supplier Name (https://www.notion.so/Supplier-Name-0123456789abcdef0123456789abcdef?pvs=21)"),
            Some("Supplier Name".to_string())
        );
        assert_eq!(
            parse_relation_titles(
                "Foot, Locker (https://www.notion.so/Foot-Locker-0123456789abcdef0123456789abcdef?pvs=21), \
                 Nike (Outlet) (https://app.notion.com/p/Nike-11111111111111111111111111111111?pvs=21)"
            ),
            vec!["Foot, Locker".to_string(), "Nike (Outlet)".to_string()]
        );
        assert_eq!(
            parse_relation_titles("Ivysaur (Poke%CC%81mon%20abc/Ivysaur%20def.md)"),
            vec!["Ivysaur".to_string()]
        );
        assert_eq!(
            parse_relation_name("Plain Supplier"),
            Some("Plain Supplier".to_string())
        );
    }

    #[test]
    fn selects_and_checkboxes() {
        assert_eq!(parse_select("StockX"), vec!["StockX"]);
        assert_eq!(parse_select("Auditor, Data"), vec!["Auditor", "Data"]);
        assert_eq!(parse_checkbox("Yes").unwrap(), Some(true));
        assert_eq!(parse_checkbox("No").unwrap(), Some(false));
        assert!(parse_checkbox("maybe").is_err());
    }

    #[test]
    fn notion_ids_from_urls_and_ids() {
        let want = Some("01234567-89ab-cdef-0123-456789abcdef".to_string());
        assert_eq!(extract_notion_id("0123456789abcdef0123456789abcdef"), want);
        assert_eq!(
            extract_notion_id("01234567-89ab-cdef-0123-456789abcdef"),
            want
        );
        assert_eq!(
            extract_notion_id("https://www.notion.so/acme/Sales-0123456789ABCDEF0123456789abcdef?v=fedcba9876543210fedcba9876543210"),
            want
        );
        assert_eq!(
            extract_notion_id("https://www.notion.so/0123456789abcdef0123456789abcdef"),
            want
        );
        assert_eq!(extract_notion_id("not an id"), None);
        assert_eq!(
            extract_notion_id("abc0123456789abcdef0123456789abcdef"),
            None
        );
    }
}
