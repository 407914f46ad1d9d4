//! Matching our (size, region) to a StockX variant, and our SKU to StockX's style IDs. Pure.
//!
//! Sizes come from people and are typed every way: "10", "10.0", "US 10", "US M 10", "6.5W",
//! "W 6.5", "US W 6.5", "10.5 W", "6.5Y", "GS 6.5", "EU 38 2/3", "EU 38⅔", "38,5", "23.5cm",
//! and for apparel "M" or "XL". The region column says which chart ("US", "US M", "US W", "UK",
//! "EU", "CM", "Y"/"GS"; it defaults to "US" when left empty), but a chart written into the
//! size itself ("6.5W") is more precise and wins. Plain "US" means the product's own US chart:
//! women's for a women's product, youth for a grade-school one, men's otherwise.
//!
//! StockX gives each variant a `variantValue` in the product's default chart ("10", "6.5W",
//! "6.5Y") and a size chart: a `defaultConversion` and `availableConversions`, each
//! `{size, type}` with types `us m`, `us w`, `uk`, `eu`, `cm`, `kr`, ... and sizes written
//! "US M 10", "6.5W", "UK 9", "EU 38 2/3", "CM 23.5" or a bare "10". Both sides are read into
//! the same (chart, number) form and compared exactly, with one tolerance: EU thirds typed as
//! halves or decimals ("38.5" or "38.7" for 38 2/3) match when exactly one size is that close.
//!
//! Style IDs: StockX lists some products under several style IDs in one field
//! ("NF0A3C8DLE41/NF0A3C8DJK3/..."); our SKU names that product when it equals any of them.

use super::types::{Product, Variant};

/// "DD1391-100", "dd1391 100" and "DD1391100" are the same style ID.
pub fn normalize_style_id(style_id: &str) -> String {
    style_id
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_uppercase)
        .collect()
}

/// The style IDs one `styleId` field holds, normalised: one, or several separated by `/`.
pub fn style_id_parts(style_id: &str) -> impl Iterator<Item = String> + '_ {
    style_id
        .split(['/', ',', ';', '|'])
        .map(normalize_style_id)
        .filter(|part| !part.is_empty())
}

/// How StockX's `styleId` field names our SKU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StyleIdMatch {
    /// Our SKU is one of several style IDs in the field.
    Part,
    /// The field is our SKU.
    Whole,
}

/// Whether `style_id` (StockX's field) names `sku` (ours), and how.
pub fn match_style_id(sku: &str, style_id: &str) -> Option<StyleIdMatch> {
    let wanted = normalize_style_id(sku);
    if wanted.is_empty() {
        return None;
    }
    if normalize_style_id(style_id) == wanted {
        return Some(StyleIdMatch::Whole);
    }
    let ours: Vec<String> = style_id_parts(sku).collect();
    style_id_parts(style_id)
        .any(|part| ours.contains(&part))
        .then_some(StyleIdMatch::Part)
}

/// The product among search results whose style ID is our SKU: an exact whole-field match
/// first (a search also returns near matches and bundles), else the first that lists the SKU
/// among its style IDs; None when no product names it.
pub fn pick_product_by_style_id(products: Vec<Product>, sku: &str) -> Option<Product> {
    let mut best: Option<(StyleIdMatch, Product)> = None;
    for product in products {
        let Some(found) = product
            .style_id
            .as_deref()
            .and_then(|style_id| match_style_id(sku, style_id))
        else {
            continue;
        };
        if best.as_ref().is_none_or(|(kept, _)| found > *kept) {
            best = Some((found, product));
        }
    }
    best.map(|(_, product)| product)
}

/// A size chart, from a region people type or a conversion `type` StockX sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chart {
    /// "US" without men's or women's: the product's own US chart.
    Us,
    UsMen,
    UsWomen,
    /// Youth / grade school ("6.5Y", "GS 6.5").
    Youth,
    Uk,
    Eu,
    Cm,
    /// Any other chart, as its lower-case name (`kr`, `mx`, ...).
    Other(String),
}

impl Chart {
    fn is_us(&self) -> bool {
        matches!(
            self,
            Chart::Us | Chart::UsMen | Chart::UsWomen | Chart::Youth
        )
    }
}

/// The chart a region names ("US W", "w", "Women's", "GS", "eu", "cm", ...); None when empty.
pub fn normalize_region(region: &str) -> Option<Chart> {
    let words = label_words(region);
    let chart = match words.join(" ").as_str() {
        "" => return None,
        "us" | "usa" => Chart::Us,
        "us m" | "usm" | "m" | "men" | "mens" | "us men" | "us mens" => Chart::UsMen,
        "us w" | "usw" | "w" | "wmns" | "women" | "womens" | "us women" | "us womens"
        | "us wmns" => Chart::UsWomen,
        "y" | "gs" | "us y" | "usy" | "us gs" | "youth" | "us youth" | "grade school" => {
            Chart::Youth
        }
        "uk" => Chart::Uk,
        "eu" | "eur" => Chart::Eu,
        // Japanese shoe sizes are centimetres.
        "cm" | "jp" => Chart::Cm,
        other => Chart::Other(other.to_string()),
    };
    Some(chart)
}

/// The words of a label, lower case: "Women's" → ["womens"], "US-W." → ["us", "w"]; the
/// filler "size" dropped.
fn label_words(label: &str) -> Vec<String> {
    label
        .to_lowercase()
        .replace(['\'', '’'], "")
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && *w != "size" && *w != "sz")
        .map(str::to_string)
        .collect()
}

/// Sizes are compared in 1/600 of a size: exact for halves, thirds and two decimals.
const UNIT: i64 = 600;

#[derive(Debug, Clone, PartialEq, Eq)]
enum SizeValue {
    /// A number in 1/600 units (10.5 → 6300, 38 2/3 → 23200).
    Number(i64),
    /// A size that is not a number ("M", "XL", "One Size"), lower case, spaces collapsed.
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ParsedSize {
    /// The chart written into the size ("W" in "6.5W"), if any.
    chart: Option<Chart>,
    value: SizeValue,
}

/// Reads "US W 6.5", "6.5W", "EU 38 2/3", "23.5cm", "XL" ... None for an empty size.
fn parse_size(text: &str) -> Option<ParsedSize> {
    let text = text
        .trim()
        .replace('⅓', " 1/3")
        .replace('⅔', " 2/3")
        .replace('½', " 1/2")
        .replace('¼', " 1/4")
        .replace('¾', " 3/4");
    if text.is_empty() {
        return None;
    }
    let as_text = || ParsedSize {
        chart: None,
        value: SizeValue::Text(
            text.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase(),
        ),
    };
    let bytes = text.as_bytes();
    let Some(start) = bytes.iter().position(u8::is_ascii_digit) else {
        return Some(as_text());
    };
    let Some((units, end)) = parse_number(bytes, start) else {
        return Some(as_text());
    };
    let rest = &text[end..];
    // A second number ("W 8 / M 6.5", "10-11") makes the size ambiguous: text only.
    if rest.bytes().any(|b| b.is_ascii_digit()) {
        return Some(as_text());
    }
    let label = format!("{} {}", &text[..start], rest);
    Some(ParsedSize {
        chart: normalize_region(&label),
        value: SizeValue::Number(units),
    })
}

/// The number at `start` ("10", "10.5", "38,5", "38 2/3", "38-2/3") in 1/600 units, and where
/// it ends.
fn parse_number(bytes: &[u8], start: usize) -> Option<(i64, usize)> {
    let digits_end = |from: usize| {
        bytes[from..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .map_or(bytes.len(), |n| from + n)
    };
    let whole_end = digits_end(start);
    let whole: i64 = std::str::from_utf8(&bytes[start..whole_end])
        .ok()?
        .parse()
        .ok()?;
    let mut units = whole.checked_mul(UNIT)?;
    let mut end = whole_end;
    if matches!(bytes.get(end), Some(b'.' | b','))
        && bytes.get(end + 1).is_some_and(u8::is_ascii_digit)
    {
        let frac_end = digits_end(end + 1);
        let frac = &bytes[end + 1..frac_end];
        let frac = &frac[..frac.len().min(9)];
        let value: i64 = std::str::from_utf8(frac).ok()?.parse().ok()?;
        let scale = 10i64.pow(frac.len() as u32);
        units = units.checked_add((value * UNIT + scale / 2) / scale)?;
        end = frac_end;
    } else {
        // A fraction after the whole number: "38 2/3", "38-2/3".
        let mut at = end;
        while matches!(bytes.get(at), Some(b' ' | b'-')) {
            at += 1;
        }
        if at > end && bytes.get(at).is_some_and(u8::is_ascii_digit) {
            let num_end = digits_end(at);
            if bytes.get(num_end) == Some(&b'/')
                && bytes.get(num_end + 1).is_some_and(u8::is_ascii_digit)
            {
                let den_end = digits_end(num_end + 1);
                let num: i64 = std::str::from_utf8(&bytes[at..num_end])
                    .ok()?
                    .parse()
                    .ok()?;
                let den: i64 = std::str::from_utf8(&bytes[num_end + 1..den_end])
                    .ok()?
                    .parse()
                    .ok()?;
                if den > 0 && num < den {
                    units += (num.checked_mul(UNIT)? + den / 2) / den;
                    end = den_end;
                }
            }
        }
    }
    Some((units, end))
}

/// One size of a variant in one chart (None: StockX did not say which).
struct Candidate {
    chart: Option<Chart>,
    value: SizeValue,
}

/// Every size StockX gives for a variant, each with its chart, and the variant's default chart.
fn candidates(variant: &Variant) -> (Option<Chart>, Vec<Candidate>) {
    let type_chart = |kind: Option<&str>| {
        kind.and_then(normalize_region).map(|c| match c {
            // StockX's unqualified "us" is its men's chart.
            Chart::Us => Chart::UsMen,
            c => c,
        })
    };
    // A chart written in the size ("6.5Y" under type "us m") is the more precise one.
    let resolve = |hint: Option<Chart>, declared: Option<Chart>| match hint {
        Some(Chart::Us) | None => declared.or(hint),
        specific => specific,
    };
    let chart = variant.size_chart.as_ref();
    let default_type = type_chart(
        chart
            .and_then(|c| c.default_conversion.as_ref())
            .and_then(|d| d.kind.as_deref()),
    );
    let mut out = Vec::new();
    let value = variant.variant_value.as_deref().and_then(parse_size);
    let default_chart = resolve(
        value.as_ref().and_then(|v| v.chart.clone()),
        default_type.clone(),
    );
    if let Some(value) = value {
        out.push(Candidate {
            chart: resolve(value.chart, default_type),
            value: value.value,
        });
    }
    let conversions = chart.into_iter().flat_map(|c| {
        c.default_conversion
            .iter()
            .chain(c.available_conversions.iter())
    });
    for conversion in conversions {
        let Some(size) = conversion.size.as_deref().and_then(parse_size) else {
            continue;
        };
        out.push(Candidate {
            chart: resolve(size.chart, type_chart(conversion.kind.as_deref())),
            value: size.value,
        });
    }
    (default_chart, out)
}

/// Whether a size StockX lists in `candidate` chart answers a size wanted in `wanted` chart,
/// for a variant whose default chart is `default`.
fn chart_accepts(
    wanted: Option<&Chart>,
    candidate: Option<&Chart>,
    default: Option<&Chart>,
) -> bool {
    // A size StockX gives without any chart (no size chart at all) is taken in every chart.
    let Some(candidate) = candidate else {
        return true;
    };
    match wanted {
        None => default.is_none_or(|d| d == candidate),
        Some(Chart::Us) => match default {
            Some(d) if d.is_us() => d == candidate,
            _ => matches!(candidate, Chart::UsMen | Chart::Us),
        },
        Some(Chart::UsMen) => matches!(candidate, Chart::UsMen | Chart::Us),
        Some(wanted) => wanted == candidate,
    }
}

/// EU thirds typed as decimals are at most 1/6 of a size away ("38.5" for 38 2/3).
const EU_TOLERANCE: i64 = UNIT / 6;

/// The variant whose size, in the chart our size or region names, is our size.
pub fn match_variant<'a>(variants: &'a [Variant], size: &str, region: &str) -> Option<&'a Variant> {
    let wanted = parse_size(size)?;
    let region = normalize_region(region);
    let chart = match (wanted.chart, region) {
        (Some(hint), _) if hint != Chart::Us => Some(hint),
        (_, Some(region)) if region != Chart::Us => Some(region),
        (hint, region) => hint.or(region),
    };
    let all: Vec<(&Variant, Option<Chart>, Vec<Candidate>)> = variants
        .iter()
        .map(|v| {
            let (default, sizes) = candidates(v);
            (v, default, sizes)
        })
        .collect();
    let exact = all.iter().find(|(_, default, sizes)| {
        sizes.iter().any(|c| {
            c.value == wanted.value
                && (matches!(c.value, SizeValue::Text(_))
                    || chart_accepts(chart.as_ref(), c.chart.as_ref(), default.as_ref()))
        })
    });
    if let Some((variant, _, _)) = exact {
        return Some(variant);
    }
    let (Some(Chart::Eu), SizeValue::Number(number)) = (&chart, &wanted.value) else {
        return None;
    };
    let mut close = all.iter().filter(|(_, _, sizes)| {
        sizes.iter().any(|c| {
            c.chart == Some(Chart::Eu)
                && matches!(c.value, SizeValue::Number(n) if (n - number).abs() <= EU_TOLERANCE)
        })
    });
    match (close.next(), close.next()) {
        (Some((variant, _, _)), None) => Some(variant),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stockx::types::{SizeChart, SizeConversion};

    fn conv(size: &str, kind: &str) -> SizeConversion {
        SizeConversion {
            size: Some(size.into()),
            kind: Some(kind.into()),
        }
    }

    fn with_chart(
        id: &str,
        value: &str,
        default: SizeConversion,
        others: Vec<SizeConversion>,
    ) -> Variant {
        Variant {
            product_id: Some("p".into()),
            variant_id: id.into(),
            variant_name: None,
            variant_value: Some(value.into()),
            size_chart: Some(SizeChart {
                default_conversion: Some(default),
                available_conversions: others,
            }),
        }
    }

    /// A men's sneaker: variantValue "10", default "US M 10", conversions UK, EU, US W, CM.
    fn mens(id: &str, us: &str, uk: &str, eu: &str, cm: &str) -> Variant {
        let women = us.parse::<f64>().unwrap() + 1.5;
        with_chart(
            id,
            us,
            conv(&format!("US M {us}"), "us m"),
            vec![
                conv(&format!("US M {us}"), "us m"),
                conv(&format!("US W {women}"), "us w"),
                conv(&format!("UK {uk}"), "uk"),
                conv(&format!("EU {eu}"), "eu"),
                conv(&format!("CM {cm}"), "cm"),
            ],
        )
    }

    fn mens_run() -> Vec<Variant> {
        vec![
            mens("v9", "9", "8", "42.5", "27"),
            mens("v95", "9.5", "8.5", "43", "27.5"),
            mens("v10", "10", "9", "44", "28"),
        ]
    }

    /// A women's product as StockX answers it: variantValue "6.5W", default `{6.5W, us w}`.
    fn womens(id: &str, w: &str, uk: &str, eu: &str, cm: &str) -> Variant {
        with_chart(
            id,
            &format!("{w}W"),
            conv(&format!("{w}W"), "us w"),
            vec![
                conv(&format!("US W {w}"), "us w"),
                conv(&format!("UK {uk}"), "uk"),
                conv(&format!("EU {eu}"), "eu"),
                conv(&format!("CM {cm}"), "cm"),
            ],
        )
    }

    fn womens_run() -> Vec<Variant> {
        vec![
            womens("w6", "6", "3.5", "36.5", "23"),
            womens("w65", "6.5", "4", "37.5", "23.5"),
            womens("w7", "7", "4.5", "38", "24"),
        ]
    }

    /// A grade-school product: variantValue "6.5Y", default conversion typed "us m".
    fn youth(id: &str, y: &str, uk: &str, eu: &str) -> Variant {
        with_chart(
            id,
            &format!("{y}Y"),
            conv(&format!("{y}Y"), "us m"),
            vec![
                conv(&format!("UK {uk}"), "uk"),
                conv(&format!("EU {eu}"), "eu"),
            ],
        )
    }

    fn youth_run() -> Vec<Variant> {
        vec![
            youth("y6", "6", "5.5", "38.5"),
            youth("y65", "6.5", "6", "39"),
            youth("y7", "7", "6", "40"),
        ]
    }

    /// An adidas-style run with EU thirds.
    fn thirds_run() -> Vec<Variant> {
        vec![
            with_chart(
                "a8",
                "8",
                conv("US M 8", "us m"),
                vec![conv("UK 7.5", "uk"), conv("EU 41 1/3", "eu")],
            ),
            with_chart(
                "a85",
                "8.5",
                conv("US M 8.5", "us m"),
                vec![conv("UK 8", "uk"), conv("EU 42", "eu")],
            ),
            with_chart(
                "a9",
                "9",
                conv("US M 9", "us m"),
                vec![conv("UK 8.5", "uk"), conv("EU 42 2/3", "eu")],
            ),
        ]
    }

    fn id<'a>(v: &'a [Variant], size: &str, region: &str) -> Option<&'a str> {
        match_variant(v, size, region).map(|v| v.variant_id.as_str())
    }

    #[test]
    fn us_mens_sizes_in_every_typed_form() {
        let v = mens_run();
        for (size, region) in [
            ("10", "US"),
            ("10", ""),
            ("10.0", "us m"),
            ("US M 10", ""),
            ("US 10", "US"),
            ("10 M", "US"),
            ("M 10", ""),
            ("Size 10", "US M"),
            ("US10", "men's"),
        ] {
            assert_eq!(id(&v, size, region), Some("v10"), "{size:?} {region:?}");
        }
        assert_eq!(id(&v, "9.5", "US"), Some("v95"));
        assert_eq!(id(&v, "9,5", "US"), Some("v95"));
    }

    #[test]
    fn other_charts_match_their_conversions() {
        let v = mens_run();
        assert_eq!(id(&v, "44", "EU"), Some("v10"));
        assert_eq!(id(&v, "EU 42.5", "eu"), Some("v9"));
        assert_eq!(id(&v, "EU42,5", ""), Some("v9"));
        assert_eq!(id(&v, "8.5", "UK"), Some("v95"));
        assert_eq!(
            id(&v, "UK 9", "US"),
            Some("v10"),
            "the size's own chart wins"
        );
        assert_eq!(id(&v, "11.5", "US W"), Some("v10"));
        assert_eq!(id(&v, "11.5W", "US"), Some("v10"));
        assert_eq!(id(&v, "28", "CM"), Some("v10"));
        assert_eq!(id(&v, "27.5cm", ""), Some("v95"));
        assert_eq!(id(&v, "27", "JP"), Some("v9"));
    }

    #[test]
    fn a_womens_product_answers_every_womens_form() {
        let v = womens_run();
        for (size, region) in [
            ("6.5W", "US"),
            ("6.5W", ""),
            ("6.5", "US W"),
            ("6.5", "us w"),
            ("W 6.5", "US"),
            ("US W 6.5", ""),
            ("6.5", "Women's"),
            ("6.5", "WMNS"),
            ("6.5", "US"),
            ("6.5", ""),
            ("w6.5", "US"),
        ] {
            assert_eq!(id(&v, size, region), Some("w65"), "{size:?} {region:?}");
        }
        assert_eq!(id(&v, "4", "UK"), Some("w65"));
        assert_eq!(id(&v, "EU 38", ""), Some("w7"));
        assert_eq!(id(&v, "CM 23.5", ""), Some("w65"));
        assert_eq!(
            id(&v, "6.5", "US M"),
            None,
            "no men's chart on this product"
        );
        assert_eq!(id(&v, "10.5 W", "US"), None, "no such women's size");
    }

    #[test]
    fn a_womens_size_with_a_space_before_the_w() {
        let v = vec![womens("w105", "10.5", "8", "42.5", "27.5")];
        assert_eq!(id(&v, "10.5 W", "US"), Some("w105"));
        assert_eq!(
            id(&v, "10.5W", "UK"),
            Some("w105"),
            "the W in the size wins"
        );
    }

    #[test]
    fn youth_sizes_in_every_typed_form() {
        let v = youth_run();
        for (size, region) in [
            ("6.5Y", "US"),
            ("6.5 Y", ""),
            ("GS 6.5", "US"),
            ("6.5", "GS"),
            ("6.5", "Y"),
            ("6.5", "US"),
            ("US Y 6.5", ""),
        ] {
            assert_eq!(id(&v, size, region), Some("y65"), "{size:?} {region:?}");
        }
        assert_eq!(id(&v, "EU 39", ""), Some("y65"));
        assert_eq!(id(&v, "6.5W", "US"), None);
    }

    #[test]
    fn eu_thirds_typed_as_fractions_decimals_or_halves() {
        let v = thirds_run();
        for size in [
            "EU 42 2/3",
            "42 2/3",
            "42⅔",
            "42-2/3",
            "42.67",
            "42.7",
            "42.5",
        ] {
            assert_eq!(id(&v, size, "EU"), Some("a9"), "{size:?}");
        }
        assert_eq!(id(&v, "41 1/3", "EU"), Some("a8"));
        assert_eq!(id(&v, "41.5", "EU"), Some("a8"));
        assert_eq!(id(&v, "EU 42", ""), Some("a85"));
        assert_eq!(id(&v, "43", "EU"), None, "more than a sixth away");
        // Where both neighbours are a sixth away, a half matches neither.
        let ambiguous = vec![
            with_chart(
                "x",
                "1",
                conv("US M 1", "us m"),
                vec![conv("EU 38 1/3", "eu")],
            ),
            with_chart(
                "y",
                "2",
                conv("US M 2", "us m"),
                vec![conv("EU 38 2/3", "eu")],
            ),
        ];
        assert_eq!(id(&ambiguous, "38.5", "EU"), None);
        // An exact half is preferred where the chart has halves.
        assert_eq!(id(&mens_run(), "42.5", "EU"), Some("v9"));
    }

    #[test]
    fn apparel_sizes_match_as_text() {
        let v: Vec<Variant> = ["S", "M", "L", "XL", "2XL"]
            .iter()
            .map(|s| with_chart(s, s, conv(s, "us m"), vec![]))
            .collect();
        assert_eq!(id(&v, "m", "US"), Some("M"));
        assert_eq!(id(&v, "XL", ""), Some("XL"));
        assert_eq!(id(&v, "2xl", "US"), Some("2XL"));
        assert_eq!(id(&v, "XXL", "US"), None);
    }

    #[test]
    fn a_size_that_is_not_there_matches_nothing() {
        let v = mens_run();
        assert_eq!(id(&v, "14", "US"), None);
        assert_eq!(id(&v, "9", "EU"), None);
        assert_eq!(id(&v, "", "US"), None);
        assert_eq!(id(&v, "W 8 / M 6.5", "US"), None, "two sizes in one");
    }

    #[test]
    fn variants_without_a_size_chart_match_their_value_in_any_region() {
        let v = vec![Variant {
            product_id: None,
            variant_id: "bare".into(),
            variant_name: None,
            variant_value: Some("10".into()),
            size_chart: None,
        }];
        assert_eq!(id(&v, "10", "US"), Some("bare"));
        assert_eq!(id(&v, "10", "UK"), Some("bare"));
    }

    #[test]
    fn regions_people_type() {
        for (typed, chart) in [
            ("US", Chart::Us),
            ("us", Chart::Us),
            ("US M", Chart::UsMen),
            ("USM", Chart::UsMen),
            ("Men's", Chart::UsMen),
            ("US W", Chart::UsWomen),
            ("us-w", Chart::UsWomen),
            ("Women's", Chart::UsWomen),
            ("W", Chart::UsWomen),
            ("UK", Chart::Uk),
            ("EU", Chart::Eu),
            ("CM", Chart::Cm),
            ("Y", Chart::Youth),
            ("GS", Chart::Youth),
            ("us y", Chart::Youth),
            ("KR", Chart::Other("kr".into())),
        ] {
            assert_eq!(normalize_region(typed), Some(chart), "{typed:?}");
        }
        assert_eq!(normalize_region("  "), None);
    }

    #[test]
    fn style_ids_compare_without_case_spaces_or_dashes() {
        assert_eq!(
            normalize_style_id("dd1391-100"),
            normalize_style_id("DD1391 100")
        );
        assert_ne!(
            normalize_style_id("DD1391-100"),
            normalize_style_id("DD1391-101")
        );
    }

    #[test]
    fn any_part_of_a_multi_part_style_id_names_the_product() {
        let field = "NF0A3C8DLE41/NF0A3C8DJK3/NFOA3C8DLE4-M";
        for sku in [
            "NF0A3C8DLE41",
            "nf0a3c8dle41",
            "NF0A3C8DJK3",
            "NFOA3C8DLE4M",
            "nfoa3c8dle4-m",
        ] {
            assert_eq!(
                match_style_id(sku, field),
                Some(StyleIdMatch::Part),
                "{sku}"
            );
        }
        assert_eq!(match_style_id(field, field), Some(StyleIdMatch::Whole));
        assert_eq!(
            match_style_id("NF0A3C8DLE4", field),
            None,
            "a prefix is not a part"
        );
        assert_eq!(match_style_id("NF0A3C8D", field), None);
        assert_eq!(match_style_id("", field), None);
        assert_eq!(
            match_style_id("DD1391-100", "dd1391100"),
            Some(StyleIdMatch::Whole)
        );
    }

    #[test]
    fn the_whole_style_id_beats_a_part_and_near_matches_lose() {
        let product = |id: &str, style: Option<&str>| Product {
            product_id: id.into(),
            url_key: None,
            style_id: style.map(str::to_string),
            product_type: None,
            title: None,
            brand: None,
            product_attributes: None,
        };
        let results = vec![
            product("near", Some("NF0A3C8DLE4")),
            product("none", None),
            product("bundle", Some("NF0A3C8DLE41/NF0A3C8DJK3")),
            product("exact", Some("nf0a3c8d-le41")),
        ];
        let pick = |sku| pick_product_by_style_id(results.clone(), sku).map(|p| p.product_id);
        assert_eq!(pick("NF0A3C8DLE41").as_deref(), Some("exact"));
        assert_eq!(pick("NF0A3C8DJK3").as_deref(), Some("bundle"));
        assert_eq!(pick("NF0A3C8DXX9"), None);
    }
}
