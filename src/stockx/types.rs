//! The StockX API v2's JSON, typed. Amounts arrive as strings ("140", "76.81") and become
//! `Decimal`; enums that StockX may extend (order status, inventory type) stay text; every
//! field StockX documents as nullable or optional is an `Option`.
//!
//! The published schema is looser than the examples: counts are JSON numbers (so `1.0` is
//! allowed), and lists and enums may be `null`. A null list reads as empty, a null status as
//! `UNKNOWN`, a float count as its integer: a job must not fail on a shape StockX may send.

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

/// A count or page number: any JSON number (`1`, `1.0`) or null. A fractional or negative
/// value is not a count and fails the decoding.
fn lenient_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<serde_json::Number>::deserialize(d)? {
        None => Ok(None),
        Some(n) => match (n.as_u64(), n.as_f64()) {
            (Some(whole), _) => Ok(Some(whole)),
            (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 => {
                Ok(Some(f as u64))
            }
            _ => Err(serde::de::Error::custom(format!(
                "count {n} is not a whole number"
            ))),
        },
    }
}

/// A list that StockX may send as `null`: read as empty.
fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// An order status: text as sent (new values included); `null` or absent is `UNKNOWN`.
fn status_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(unknown))
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
    #[serde(default, deserialize_with = "lenient_count")]
    pub count: Option<u64>,
    #[serde(default, deserialize_with = "lenient_count")]
    pub page_size: Option<u64>,
    #[serde(default, deserialize_with = "lenient_count")]
    pub page_number: Option<u64>,
    #[serde(default)]
    pub has_next_page: Option<bool>,
    #[serde(default, deserialize_with = "null_as_empty")]
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
    #[serde(default, deserialize_with = "null_as_empty")]
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
    #[serde(default = "unknown", deserialize_with = "status_text")]
    pub status: String,
    #[serde(default)]
    pub inventory_type: Option<String>,
    #[serde(default)]
    pub payout: Option<Payout>,
}

/// One order of a list (`/selling/orders/history`, `/selling/orders/active`): the
/// DetailedOrder fields less `shipment` (which we do not read), plus the item's condition. The
/// shared fields are read by the same `DetailedOrder` type, so that an order found in a list is
/// stored exactly as the single-order answer would be.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListOrder {
    #[serde(flatten)]
    pub order: DetailedOrder,
    #[serde(default)]
    pub condition: Option<String>,
    #[serde(default)]
    pub condition_description: Option<String>,
}

/// A page of the seller's orders.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderPage {
    #[serde(default, deserialize_with = "lenient_count")]
    pub count: Option<u64>,
    #[serde(default, deserialize_with = "lenient_count")]
    pub page_size: Option<u64>,
    #[serde(default, deserialize_with = "lenient_count")]
    pub page_number: Option<u64>,
    #[serde(default)]
    pub has_next_page: Option<bool>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub orders: Vec<ListOrder>,
}

impl OrderPage {
    /// An empty last page (what a 404 on a list means).
    pub fn empty() -> OrderPage {
        OrderPage {
            count: Some(0),
            page_size: None,
            page_number: None,
            has_next_page: Some(false),
            orders: Vec::new(),
        }
    }
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
    #[serde(default, deserialize_with = "null_as_empty")]
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
    #[serde(default, deserialize_with = "lenient_count")]
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

    #[test]
    fn a_float_count_is_a_count_and_a_fractional_one_is_refused() {
        let r: SearchResults = serde_json::from_str(
            r#"{"count":1.0,"pageSize":10.0,"pageNumber":1,"hasNextPage":false,"products":[]}"#,
        )
        .unwrap();
        assert_eq!(
            (r.count, r.page_size, r.page_number),
            (Some(1), Some(10), Some(1))
        );
        let r: SearchResults =
            serde_json::from_str(r#"{"count":null,"hasNextPage":null,"products":null}"#).unwrap();
        assert_eq!((r.count, r.products.len()), (None, 0));
        let e = serde_json::from_str::<SearchResults>(r#"{"count":1.5,"products":[]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("count 1.5"), "{e}");
        assert!(serde_json::from_str::<SearchResults>(r#"{"count":-1}"#).is_err());
    }

    #[test]
    fn null_lists_read_as_empty_and_a_null_status_as_unknown() {
        let v: Variant = serde_json::from_str(
            r#"{"productId":"p","variantId":"v","variantName":"x:10","variantValue":"10",
                "sizeChart":{"defaultConversion":{"size":"10","type":"us m"},"availableConversions":null}}"#,
        )
        .unwrap();
        let chart = v.size_chart.unwrap();
        assert!(chart.available_conversions.is_empty());
        assert_eq!(
            chart.default_conversion.unwrap().kind.as_deref(),
            Some("us m")
        );
        let order: DetailedOrder = serde_json::from_str(
            r#"{"orderNumber":"1-2","status":null,"inventoryType":"SOMETHING_ELSE",
                "payout":{"totalPayout":"76.81","currencyCode":"USD","adjustments":null}}"#,
        )
        .unwrap();
        assert_eq!(order.status, "UNKNOWN");
        assert_eq!(order.inventory_type.as_deref(), Some("SOMETHING_ELSE"));
        assert!(order.payout.unwrap().adjustments.is_empty());
        let order: DetailedOrder = serde_json::from_str(r#"{"orderNumber":"1-2"}"#).unwrap();
        assert_eq!(order.status, "UNKNOWN");
    }

    #[test]
    fn a_list_order_reads_as_the_detailed_order_plus_its_condition() {
        let json = r#"{"count":1,"pageSize":100,"pageNumber":1,"hasNextPage":false,"orders":[
            {"orderNumber":"1-2","amount":"140","status":"COMPLETED","condition":"NEW",
             "conditionDescription":null,"variant":{"variantId":"v1"},
             "product":{"productId":"p1"},
             "payout":{"totalPayout":"76.81","adjustments":[{"amount":"-6.32"}]}}]}"#;
        let page: OrderPage = serde_json::from_str(json).unwrap();
        assert_eq!(page.has_next_page, Some(false));
        let first = &page.orders[0];
        assert_eq!(first.condition.as_deref(), Some("NEW"));
        assert_eq!(first.order.order_number, "1-2");
        assert_eq!(first.order.amount, Some(Decimal::new(140, 0)));
        let payout = first.order.payout.as_ref().unwrap();
        assert_eq!(payout.total_payout, Some(Decimal::new(7681, 2)));
        assert_eq!(first.order.variant.as_ref().unwrap().variant_id, "v1");
        let page: OrderPage = serde_json::from_str(r#"{"orders":null}"#).unwrap();
        assert!(page.orders.is_empty());
    }

    #[test]
    fn a_float_token_lifetime_is_read() {
        let t: TokenResponse = serde_json::from_str(
            r#"{"access_token":"a","token_type":"Bearer","expires_in":43200.0,"scope":"offline_access openid"}"#,
        )
        .unwrap();
        assert_eq!(t.expires_in, Some(43200));
    }
}
