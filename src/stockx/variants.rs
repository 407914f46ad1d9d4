//! Matching our (size, region) to a StockX variant, and style IDs to each other. Pure.
//!
//! Our sizes come from people: "10", "10.0", "US 10", "US M 10", "EU 44", with a region such
//! as "US", "US M", "US W", "UK", "EU" (empty means the product's default chart). StockX gives
//! each variant a `variantValue` in the product's default chart and conversions per chart type
//! (`us m`, `us w`, `uk`, `eu`, ...), e.g. `{size: "UK 9", type: "uk"}`.

use super::types::Variant;

/// "DD1391-100", "dd1391 100" and "DD1391100" are the same style ID.
pub fn normalize_style_id(style_id: &str) -> String {
    style_id
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_uppercase)
        .collect()
}

/// The chart type StockX uses for our region ("US" → men's US; "US W" → "us w").
fn chart_type(region: &str) -> Option<String> {
    let region = region.trim().to_lowercase();
    match region.as_str() {
        "" => None,
        "us" | "us m" | "usm" | "us men" | "men" => Some("us m".into()),
        "us w" | "usw" | "us women" | "women" | "wmns" => Some("us w".into()),
        other => Some(other.to_string()),
    }
}

/// The number in a size ("US M 10.5" → "10.5", "10.0" → "10", "44 2/3" → "44 2/3").
fn size_number(size: &str) -> String {
    let start = size
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(size.len());
    let number = size[start..].trim();
    match number.parse::<f64>() {
        Ok(n) if n.fract() == 0.0 => format!("{}", n as i64),
        Ok(n) => format!("{n}"),
        Err(_) => number.to_lowercase(),
    }
}

/// The variant whose size, in our region's chart, is our size.
pub fn match_variant<'a>(variants: &'a [Variant], size: &str, region: &str) -> Option<&'a Variant> {
    let wanted = size_number(size);
    if wanted.is_empty() {
        return None;
    }
    let chart = chart_type(region);
    let default_type = |v: &Variant| {
        v.size_chart
            .as_ref()
            .and_then(|c| c.default_conversion.as_ref())
            .and_then(|d| d.kind.clone())
            .map(|k| k.to_lowercase())
    };
    variants.iter().find(|v| {
        let in_default_chart = match &chart {
            None => true,
            Some(chart) => default_type(v).is_none_or(|t| &t == chart),
        };
        if in_default_chart
            && v.variant_value
                .as_deref()
                .is_some_and(|value| size_number(value) == wanted)
        {
            return true;
        }
        let Some(chart) = &chart else { return false };
        v.size_chart
            .iter()
            .flat_map(|c| {
                c.available_conversions
                    .iter()
                    .chain(c.default_conversion.iter())
            })
            .any(|conv| {
                conv.kind.as_deref().map(str::to_lowercase).as_ref() == Some(chart)
                    && conv
                        .size
                        .as_deref()
                        .is_some_and(|s| size_number(s) == wanted)
            })
    })
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

    fn variant(id: &str, us: &str, uk: &str, eu: &str) -> Variant {
        Variant {
            product_id: Some("p".into()),
            variant_id: id.into(),
            variant_name: None,
            variant_value: Some(us.into()),
            size_chart: Some(SizeChart {
                default_conversion: Some(conv(&format!("US M {us}"), "us m")),
                available_conversions: vec![
                    conv(&format!("UK {uk}"), "uk"),
                    conv(&format!("EU {eu}"), "eu"),
                    conv(
                        &format!("US W {}", us.parse::<f64>().unwrap() + 1.5),
                        "us w",
                    ),
                ],
            }),
        }
    }

    fn variants() -> Vec<Variant> {
        vec![
            variant("v9", "9", "8", "42.5"),
            variant("v95", "9.5", "8.5", "43"),
            variant("v10", "10", "9", "44"),
        ]
    }

    #[test]
    fn us_sizes_match_the_variant_value() {
        let v = variants();
        for (size, region) in [("10", "US"), ("10.0", "us m"), ("US M 10", ""), ("10", "")] {
            assert_eq!(
                match_variant(&v, size, region).unwrap().variant_id,
                "v10",
                "{size} {region}"
            );
        }
        assert_eq!(match_variant(&v, "9.5", "US").unwrap().variant_id, "v95");
    }

    #[test]
    fn other_charts_match_their_conversions() {
        let v = variants();
        assert_eq!(match_variant(&v, "44", "EU").unwrap().variant_id, "v10");
        assert_eq!(match_variant(&v, "EU 42.5", "eu").unwrap().variant_id, "v9");
        assert_eq!(match_variant(&v, "8.5", "UK").unwrap().variant_id, "v95");
        assert_eq!(match_variant(&v, "11.5", "US W").unwrap().variant_id, "v10");
    }

    #[test]
    fn a_size_that_is_not_there_matches_nothing() {
        let v = variants();
        assert!(match_variant(&v, "14", "US").is_none());
        assert!(match_variant(&v, "9", "EU").is_none());
        assert!(match_variant(&v, "", "US").is_none());
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
}
