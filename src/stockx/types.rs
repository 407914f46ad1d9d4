//! The StockX API v2's JSON, typed. Amounts arrive as strings ("140", "76.81") and become
//! `Decimal`; enums that StockX may extend (order status, inventory type) stay text; every
//! field StockX documents as nullable or optional is an `Option`.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use time::Date;

/// A money amount: a JSON string ("76.81"), a number, or null.
pub(crate) fn amount<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(serde_json::Number),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Text(s)) if s.trim().is_empty() => Ok(None),
        Some(Raw::Text(s)) => s
            .trim()
            .parse::<Decimal>()
            .or_else(|_| Decimal::from_scientific(s.trim()))
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("amount {s:?}: {e}"))),
        Some(Raw::Number(n)) => n
            .to_string()
            .parse::<Decimal>()
            .or_else(|_| Decimal::from_scientific(&n.to_string()))
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("amount {n}: {e}"))),
    }
}

/// A `YYYY-MM-DD` date, or null / empty / unparseable (kept as None rather than failing a job).
fn lenient_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
    let raw = Option::<String>::deserialize(d)?;
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Ok(raw.and_then(|s| Date::parse(s.get(..10).unwrap_or(&s), &format).ok()))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchResults {
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default)]
    pub has_next_page: Option<bool>,
    #[serde(default)]
    pub products: Vec<Product>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub product_id: String,
    #[serde(default)]
    pub url_key: Option<String>,
    #[serde(default)]
    pub style_id: Option<String>,
    #[serde(default)]
    pub product_type: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub brand: Option<String>,
    #[serde(default)]
    pub product_attributes: Option<ProductAttributes>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductAttributes {
    #[serde(default)]
    pub gender: Option<String>,
    #[serde(default)]
    pub season: Option<String>,
    #[serde(default, deserialize_with = "lenient_date")]
    pub release_date: Option<Date>,
    #[serde(default, deserialize_with = "amount")]
    pub retail_price: Option<Decimal>,
    #[serde(default)]
    pub colorway: Option<String>,
    #[serde(default)]
    pub color: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Variant {
    #[serde(default)]
    pub product_id: Option<String>,
    pub variant_id: String,
    #[serde(default)]
    pub variant_name: Option<String>,
    #[serde(default)]
    pub variant_value: Option<String>,
    #[serde(default)]
    pub size_chart: Option<SizeChart>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SizeChart {
    #[serde(default)]
    pub default_conversion: Option<SizeConversion>,
    #[serde(default)]
    pub available_conversions: Vec<SizeConversion>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SizeConversion {
    #[serde(default)]
    pub size: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MarketData {
    #[serde(default)]
    pub product_id: Option<String>,
    pub variant_id: String,
    #[serde(default)]
    pub currency_code: Option<String>,
    #[serde(default, deserialize_with = "amount")]
    pub lowest_ask_amount: Option<Decimal>,
    #[serde(default, deserialize_with = "amount")]
    pub highest_bid_amount: Option<Decimal>,
    #[serde(default, deserialize_with = "amount")]
    pub sell_faster_amount: Option<Decimal>,
    #[serde(default, deserialize_with = "amount")]
    pub earn_more_amount: Option<Decimal>,
    #[serde(default, deserialize_with = "amount")]
    pub flex_lowest_ask_amount: Option<Decimal>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DetailedOrder {
    #[serde(default)]
    pub ask_id: Option<String>,
    pub order_number: String,
    #[serde(default)]
    pub listing_id: Option<String>,
    #[serde(default, deserialize_with = "amount")]
    pub amount: Option<Decimal>,
    #[serde(default)]
    pub currency_code: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub variant: Option<OrderVariant>,
    #[serde(default)]
    pub product: Option<OrderProduct>,
    /// Kept as text: StockX adds statuses (CREATED ... PAYOUTCOMPLETED, COMPLETED, UNKNOWN).
    #[serde(default = "unknown")]
    pub status: String,
    #[serde(default)]
    pub inventory_type: Option<String>,
    #[serde(default)]
    pub payout: Option<Payout>,
}

fn unknown() -> String {
    "UNKNOWN".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderVariant {
    pub variant_id: String,
    #[serde(default)]
    pub variant_name: Option<String>,
    #[serde(default)]
    pub variant_value: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderProduct {
    pub product_id: String,
    #[serde(default)]
    pub product_name: Option<String>,
    #[serde(default)]
    pub style_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Payout {
    #[serde(default, deserialize_with = "amount")]
    pub total_payout: Option<Decimal>,
    #[serde(default, deserialize_with = "amount")]
    pub sale_price: Option<Decimal>,
    #[serde(default, deserialize_with = "amount")]
    pub total_adjustments: Option<Decimal>,
    #[serde(default)]
    pub currency_code: Option<String>,
    #[serde(default)]
    pub adjustments: Vec<Adjustment>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Adjustment {
    #[serde(default)]
    pub adjustment_type: Option<String>,
    #[serde(default, deserialize_with = "amount")]
    pub amount: Option<Decimal>,
    #[serde(default, deserialize_with = "amount")]
    pub percentage: Option<Decimal>,
}

/// The token endpoint's answer.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_amounts_parse_from_strings_and_unknown_status_is_kept() {
        let json = r#"{"orderNumber":"323314425-323214184","amount":"140","currencyCode":"EUR",
            "status":"SOMETHINGNEW","variant":{"variantId":"v1","variantValue":"10"},
            "product":{"productId":"p1","styleId":"DD1391-100"},
            "payout":{"totalPayout":"76.81","salePrice":"79","totalAdjustments":"-2.19",
              "currencyCode":"EUR","adjustments":[{"adjustmentType":"Transaction Fee (8%)","amount":"-6.32","percentage":"0.08"}]}}"#;
        let order: DetailedOrder = serde_json::from_str(json).unwrap();
        assert_eq!(order.amount, Some(Decimal::new(140, 0)));
        assert_eq!(order.status, "SOMETHINGNEW");
        let payout = order.payout.unwrap();
        assert_eq!(payout.total_payout, Some(Decimal::new(7681, 2)));
        assert_eq!(payout.adjustments[0].amount, Some(Decimal::new(-632, 2)));
    }

    #[test]
    fn nulls_and_missing_fields_are_tolerated() {
        let md: MarketData = serde_json::from_str(
            r#"{"productId":"p","variantId":"v","currencyCode":"EUR","lowestAskAmount":null,"highestBidAmount":"120"}"#,
        )
        .unwrap();
        assert_eq!(md.lowest_ask_amount, None);
        assert_eq!(md.highest_bid_amount, Some(Decimal::new(120, 0)));
        let p: Product = serde_json::from_str(
            r#"{"productId":"p","styleId":null,"productAttributes":{"retailPrice":110,"releaseDate":"2021-03-10"}}"#,
        )
        .unwrap();
        let attrs = p.product_attributes.unwrap();
        assert_eq!(attrs.retail_price, Some(Decimal::new(110, 0)));
        assert_eq!(attrs.release_date.unwrap().to_string(), "2021-03-10");
    }
}
