//! The validation rules: pure functions from a sale's facts to findings.
//!
//! The business's checks (profit = net proceeds − purchase price within 0.01, ROI =
//! profit / purchase price within 0.001, bought before sold) plus delivery after purchase,
//! positive prices, StockX's payout against the recorded net proceeds (in the same currency;
//! another currency is a finding of its own), and StockX's order against the recorded SKU and
//! size (the product and variant StockX sold against the catalog's match). A finding is a
//! warning, never a rejection: the sale is stored as entered and the finding is recorded beside
//! it (`integration.validation_warnings`) for a person to look at. The worker and the Notion
//! import run the same rules; `store` keeps the table in step with them.

pub mod store;

use rust_decimal::Decimal;
use serde_json::json;
use time::Date;

/// Rule codes: what `integration.validation_warnings.rule` holds; the table's CHECK constraint
/// lists the same codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    ProfitMismatch,
    RoiMismatch,
    SaleBeforePurchase,
    DeliveryBeforePurchase,
    PayoutMismatch,
    StockxProductNotFound,
    StockxVariantNotFound,
    NonPositivePrice,
    CurrencyMismatch,
    OrderProductMismatch,
    SalePriceOutlier,
    PurchasePriceOutlier,
}

impl Rule {
    pub fn code(self) -> &'static str {
        match self {
            Rule::ProfitMismatch => "profit_mismatch",
            Rule::RoiMismatch => "roi_mismatch",
            Rule::SaleBeforePurchase => "sale_before_purchase",
            Rule::DeliveryBeforePurchase => "delivery_before_purchase",
            Rule::PayoutMismatch => "payout_mismatch",
            Rule::StockxProductNotFound => "stockx_product_not_found",
            Rule::StockxVariantNotFound => "stockx_variant_not_found",
            Rule::NonPositivePrice => "non_positive_price",
            Rule::CurrencyMismatch => "currency_mismatch",
            Rule::OrderProductMismatch => "order_product_mismatch",
            Rule::SalePriceOutlier => "sale_price_outlier",
            Rule::PurchasePriceOutlier => "purchase_price_outlier",
        }
    }
}

/// Every rule.
pub const ALL_RULES: [Rule; 12] = [
    Rule::ProfitMismatch,
    Rule::RoiMismatch,
    Rule::SaleBeforePurchase,
    Rule::DeliveryBeforePurchase,
    Rule::PayoutMismatch,
    Rule::StockxProductNotFound,
    Rule::StockxVariantNotFound,
    Rule::NonPositivePrice,
    Rule::CurrencyMismatch,
    Rule::OrderProductMismatch,
    Rule::SalePriceOutlier,
    Rule::PurchasePriceOutlier,
];

/// The rules [`check_sale`] decides; each run confirms or resolves every one of them.
pub const SALE_RULES: [Rule; 5] = [
    Rule::ProfitMismatch,
    Rule::RoiMismatch,
    Rule::SaleBeforePurchase,
    Rule::DeliveryBeforePurchase,
    Rule::NonPositivePrice,
];

/// One finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub rule: Rule,
    pub message: String,
    pub details: serde_json::Value,
}

/// What the business recorded about one sale. The sales store reads it with column names equal
/// to the field names.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SaleFacts {
    pub purchase_price: Decimal,
    pub purchase_date: Option<Date>,
    pub sale_price: Option<Decimal>,
    pub net_proceeds: Decimal,
    pub profit: Option<Decimal>,
    pub roi: Option<Decimal>,
    pub sold_at: Date,
    pub delivered_at: Option<Date>,
}

/// How far a recorded profit may be from net proceeds − purchase price: one cent. The one
/// source of this tolerance (the `verify` checks bind it too).
pub const PROFIT_TOLERANCE: Decimal = Decimal::from_parts(1, 0, 0, false, 2);
/// How far a recorded ROI may be from profit / purchase price: 0.001. The one source of this
/// tolerance (the `verify` checks bind it too).
pub const ROI_TOLERANCE: Decimal = Decimal::from_parts(1, 0, 0, false, 3);
/// Payout tolerance: one cent.
pub const PAYOUT_TOLERANCE: Decimal = Decimal::from_parts(1, 0, 0, false, 2);

/// The sale rules: profit, ROI and bought before sold, plus delivery after purchase and
/// positive prices.
pub fn check_sale(sale: &SaleFacts) -> Vec<Finding> {
    let mut findings = Vec::new();
    let expected_profit = sale.net_proceeds - sale.purchase_price;
    if let Some(profit) = sale.profit {
        if (profit - expected_profit).abs() > PROFIT_TOLERANCE {
            findings.push(Finding {
                rule: Rule::ProfitMismatch,
                message: format!(
                    "profit {profit} differs from net proceeds {} − purchase price {} = {expected_profit}",
                    sale.net_proceeds, sale.purchase_price
                ),
                details: json!({"recorded": profit, "expected": expected_profit}),
            });
        }
    }
    if let (Some(roi), Some(profit)) = (sale.roi, sale.profit) {
        if sale.purchase_price > Decimal::ZERO {
            let expected_roi = profit / sale.purchase_price;
            if (roi - expected_roi).abs() > ROI_TOLERANCE {
                let expected_roi = expected_roi.round_dp(4);
                findings.push(Finding {
                    rule: Rule::RoiMismatch,
                    message: format!(
                        "ROI {roi} differs from profit {profit} / purchase price {} = {expected_roi}",
                        sale.purchase_price
                    ),
                    details: json!({"recorded": roi, "expected": expected_roi}),
                });
            }
        }
    }
    if let Some(bought) = sale.purchase_date {
        if sale.sold_at < bought {
            findings.push(Finding {
                rule: Rule::SaleBeforePurchase,
                message: format!("sold on {} before it was bought on {bought}", sale.sold_at),
                details: json!({"purchase_date": bought.to_string(), "sold_at": sale.sold_at.to_string()}),
            });
        }
        if let Some(delivered) = sale.delivered_at {
            if delivered < bought {
                findings.push(Finding {
                    rule: Rule::DeliveryBeforePurchase,
                    message: format!("delivered on {delivered} before it was bought on {bought}"),
                    details: json!({"purchase_date": bought.to_string(), "delivered_at": delivered.to_string()}),
                });
            }
        }
    }
    let mut non_positive = Vec::new();
    if sale.purchase_price <= Decimal::ZERO {
        non_positive.push(("purchase_price", sale.purchase_price));
    }
    if let Some(price) = sale.sale_price.filter(|p| *p <= Decimal::ZERO) {
        non_positive.push(("sale_price", price));
    }
    if sale.net_proceeds <= Decimal::ZERO {
        non_positive.push(("net_proceeds", sale.net_proceeds));
    }
    if !non_positive.is_empty() {
        let names: Vec<String> = non_positive
            .iter()
            .map(|(name, value)| format!("{name} = {value}"))
            .collect();
        findings.push(Finding {
            rule: Rule::NonPositivePrice,
            message: format!("not a positive amount: {}", names.join(", ")),
            details: serde_json::Value::Object(
                non_positive
                    .iter()
                    .map(|(name, value)| (name.to_string(), json!(value)))
                    .collect(),
            ),
        });
    }
    findings
}

/// What a check decided: the rules it could decide (their open warnings that were not found
/// again are resolved; a rule it could not decide keeps its warnings as they are), what it
/// found, and notes for the job's report on what it could not decide.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checked {
    pub rules: Vec<Rule>,
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
}

/// What StockX says an order sold for and paid out, each in the currency it names (`None`:
/// StockX named none).
#[derive(Debug, Clone, Default)]
pub struct StockxMoney<'a> {
    pub sale_price: Option<Decimal>,
    pub order_currency: Option<&'a str>,
    pub total_payout: Option<Decimal>,
    pub payout_currency: Option<&'a str>,
}

/// StockX's order and payout against what the business recorded as net proceeds in
/// `currency`. An order or payout in another currency is a `currency_mismatch` (amounts in two
/// currencies cannot be compared, and a sale recorded in the wrong currency is worth a look);
/// the payout is compared (`payout_mismatch`) only in the sale's currency. A payout whose
/// currency StockX does not name is not compared and says so in a note.
pub fn check_payout(net_proceeds: Decimal, currency: &str, stockx: &StockxMoney) -> Checked {
    let mut checked = Checked::default();
    let differs = |c: Option<&str>| c.is_some_and(|c| !c.eq_ignore_ascii_case(currency));
    if stockx.order_currency.is_some() || stockx.payout_currency.is_some() {
        checked.rules.push(Rule::CurrencyMismatch);
    }
    if differs(stockx.order_currency) || differs(stockx.payout_currency) {
        let mut stockx_side = Vec::new();
        if let (Some(price), Some(c)) = (stockx.sale_price, stockx.order_currency) {
            stockx_side.push(format!("sold for {price} {c}"));
        } else if let Some(c) = stockx.order_currency {
            stockx_side.push(format!("order in {c}"));
        }
        match (stockx.total_payout, stockx.payout_currency) {
            (Some(payout), Some(c)) => stockx_side.push(format!("paid out {payout} {c}")),
            (None, Some(c)) => stockx_side.push(format!("payout in {c}")),
            _ => {}
        }
        checked.findings.push(Finding {
            rule: Rule::CurrencyMismatch,
            message: format!(
                "StockX {} but the sale is recorded in {currency} (net proceeds {net_proceeds} {currency}); \
                 amounts in different currencies are not compared",
                stockx_side.join(", ")
            ),
            details: json!({
                "currency": currency, "net_proceeds": net_proceeds,
                "stockx_order_currency": stockx.order_currency, "stockx_sale_price": stockx.sale_price,
                "stockx_payout_currency": stockx.payout_currency,
                "stockx_total_payout": stockx.total_payout,
            }),
        });
    }
    let Some(payout) = stockx.total_payout else {
        return checked;
    };
    let Some(payout_currency) = stockx.payout_currency else {
        checked.notes.push(format!(
            "StockX's payout {payout} names no currency: not compared with the net proceeds \
             {net_proceeds} {currency}"
        ));
        return checked;
    };
    checked.rules.push(Rule::PayoutMismatch);
    if differs(Some(payout_currency)) {
        return checked;
    }
    let difference = payout - net_proceeds;
    if difference.abs() > PAYOUT_TOLERANCE {
        checked.findings.push(Finding {
            rule: Rule::PayoutMismatch,
            message: format!(
                "StockX paid out {payout} {payout_currency} but net proceeds are recorded as {net_proceeds} {currency}"
            ),
            details: json!({"stockx_total_payout": payout, "net_proceeds": net_proceeds,
                            "currency": currency, "difference": difference}),
        });
    }
    checked
}

/// An order's item as StockX sold it and as the business recorded it. The sales store reads
/// it with column names equal to the field names.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct OrderItemFacts {
    /// The recorded SKU and size.
    pub sku: String,
    pub size: String,
    pub region: String,
    /// What StockX's order says it sold (None until the order job has asked).
    pub order_product_id: Option<String>,
    pub order_product_name: Option<String>,
    pub order_style_id: Option<String>,
    pub order_variant_id: Option<String>,
    pub order_variant_value: Option<String>,
    /// The catalog's match of the recorded SKU (None until the catalog has been asked, or an
    /// order with the same style ID has given it) and of the size (the inventory item's
    /// variant).
    pub catalog_product_id: Option<String>,
    pub catalog_title: Option<String>,
    pub catalog_variant_id: Option<String>,
}

/// StockX's order against the recorded SKU's catalog match: another product (a Dunk sold, a
/// Samba entered) or, of the same product, another variant (size) is an
/// `order_product_mismatch`. Decided only when both sides are known.
pub fn check_order_item(item: &OrderItemFacts) -> Checked {
    let mut checked = Checked::default();
    let (Some(sold), Some(matched)) = (&item.order_product_id, &item.catalog_product_id) else {
        return checked;
    };
    checked.rules.push(Rule::OrderProductMismatch);
    let details = json!({
        "recorded_sku": item.sku, "recorded_size": item.size, "recorded_region": item.region,
        "order": {"stockx_product_id": sold, "title": item.order_product_name,
                  "style_id": item.order_style_id, "stockx_variant_id": item.order_variant_id,
                  "size": item.order_variant_value},
        "catalog": {"stockx_product_id": matched, "title": item.catalog_title,
                    "stockx_variant_id": item.catalog_variant_id},
    });
    let or_unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
    if sold != matched {
        checked.findings.push(Finding {
            rule: Rule::OrderProductMismatch,
            message: format!(
                "StockX's order is for {} (style ID {}, product {sold}) but the recorded SKU {} \
                 is {} (product {matched})",
                or_unknown(&item.order_product_name),
                or_unknown(&item.order_style_id),
                item.sku,
                or_unknown(&item.catalog_title),
            ),
            details,
        });
    } else if let (Some(sold_variant), Some(matched_variant)) =
        (&item.order_variant_id, &item.catalog_variant_id)
    {
        if sold_variant != matched_variant {
            checked.findings.push(Finding {
                rule: Rule::OrderProductMismatch,
                message: format!(
                    "StockX's order is for size {} (variant {sold_variant}) but the recorded size \
                     {} ({}) is variant {matched_variant}",
                    or_unknown(&item.order_variant_value),
                    item.size,
                    item.region
                ),
                details,
            });
        }
    }
    checked
}

/// When a price is an outlier: robust statistics over earlier prices of the same thing, so one
/// odd sample cannot hide a typo or raise a false alarm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutlierPolicy {
    /// Fewer samples than this: no verdict (no warning).
    pub min_samples: usize,
    /// How many scaled MADs (1.4826 × median absolute deviation, the standard deviation's
    /// robust stand-in) from the median a price may be.
    pub max_robust_z: Decimal,
    /// ...and how far from the median as a share of it: a tight market (MAD near 0) does not
    /// flag a price a few euros off.
    pub min_relative_gap: Decimal,
}

/// A missing digit (a tenth), a doubled one or another currency are all further off than this.
pub const OUTLIER_POLICY: OutlierPolicy = OutlierPolicy {
    min_samples: 5,
    max_robust_z: Decimal::from_parts(35, 0, 0, false, 1),
    min_relative_gap: Decimal::from_parts(35, 0, 0, false, 2),
};

/// 1 / Φ⁻¹(3/4): makes the MAD estimate the standard deviation of normal data.
const MAD_SCALE: Decimal = Decimal::from_parts(14826, 0, 0, false, 4);

/// Earlier prices a price is compared with, and where they come from.
#[derive(Debug, Clone, Copy)]
pub struct PriceReference<'a> {
    /// `stockx_market` (StockX's asks and bids around the date) or `own_history` (the
    /// seller's own prices for the same SKU and size).
    pub basis: &'static str,
    pub samples: &'a [Decimal],
}

/// The median of `values` (the mean of the middle two for an even count); None when empty.
pub fn median(values: &[Decimal]) -> Option<Decimal> {
    let mut sorted = values.to_vec();
    sorted.sort();
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / Decimal::TWO),
    }
}

/// The median of the absolute deviations from `center`.
pub fn median_absolute_deviation(values: &[Decimal], center: Decimal) -> Option<Decimal> {
    let deviations: Vec<Decimal> = values.iter().map(|v| (*v - center).abs()).collect();
    median(&deviations)
}

/// What a price outlier check found out, for the finding's details.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierVerdict {
    pub basis: &'static str,
    pub samples: usize,
    pub median: Decimal,
    pub mad: Decimal,
    /// Distance from the median in scaled MADs; None when the MAD is 0.
    pub robust_z: Option<Decimal>,
    pub outlier: bool,
}

/// Judges `price` against the first reference with enough samples; None when none has.
pub fn judge_price(
    price: Decimal,
    references: &[PriceReference<'_>],
    policy: &OutlierPolicy,
) -> Option<OutlierVerdict> {
    let reference = references
        .iter()
        .find(|r| r.samples.len() >= policy.min_samples)?;
    let center = median(reference.samples)?;
    let mad = median_absolute_deviation(reference.samples, center)?;
    let gap = (price - center).abs();
    let scale = mad * MAD_SCALE;
    let robust_z = (scale > Decimal::ZERO).then(|| (gap / scale).round_dp(2));
    let far_relative = gap > center.abs() * policy.min_relative_gap;
    let far_robust = robust_z.is_none_or(|z| z > policy.max_robust_z);
    Some(OutlierVerdict {
        basis: reference.basis,
        samples: reference.samples.len(),
        median: center,
        mad,
        robust_z,
        outlier: far_relative && far_robust,
    })
}

fn outlier_finding(
    rule: Rule,
    what: &str,
    price: Decimal,
    currency: &str,
    verdict: &OutlierVerdict,
) -> Finding {
    let source = match verdict.basis {
        "stockx_market" => "StockX's market around that date",
        _ => "the seller's own prices for this SKU and size",
    };
    Finding {
        rule,
        message: format!(
            "{what} {price} {currency} is far from {source}: median {} over {} prices (a typo, a missing digit or another currency?)",
            verdict.median, verdict.samples
        ),
        details: json!({"price": price, "currency": currency, "basis": verdict.basis,
                        "median": verdict.median, "mad": verdict.mad,
                        "robust_z": verdict.robust_z, "samples": verdict.samples}),
    }
}

/// `sale_price_outlier`: the recorded sale price against StockX's market for the variant at
/// the sale date, or, with too little market history, the seller's own sale prices for the
/// SKU and size. No finding without enough samples.
pub fn check_sale_price_outlier(
    sale_price: Decimal,
    currency: &str,
    market: &[Decimal],
    own_sales: &[Decimal],
    policy: &OutlierPolicy,
) -> Option<Finding> {
    let references = [
        PriceReference {
            basis: "stockx_market",
            samples: market,
        },
        PriceReference {
            basis: "own_history",
            samples: own_sales,
        },
    ];
    let verdict = judge_price(sale_price, &references, policy)?;
    verdict.outlier.then(|| {
        outlier_finding(
            Rule::SalePriceOutlier,
            "sale price",
            sale_price,
            currency,
            &verdict,
        )
    })
}

/// `purchase_price_outlier`: the purchase price against the seller's own purchases of the SKU
/// and size. Not against the market: buying at retail far below resale prices is the business,
/// not a typo.
pub fn check_purchase_price_outlier(
    purchase_price: Decimal,
    currency: &str,
    own_purchases: &[Decimal],
    policy: &OutlierPolicy,
) -> Option<Finding> {
    let references = [PriceReference {
        basis: "own_history",
        samples: own_purchases,
    }];
    let verdict = judge_price(purchase_price, &references, policy)?;
    verdict.outlier.then(|| {
        outlier_finding(
            Rule::PurchasePriceOutlier,
            "purchase price",
            purchase_price,
            currency,
            &verdict,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use time::macros::date;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn sale() -> SaleFacts {
        SaleFacts {
            purchase_price: d("110.00"),
            purchase_date: Some(date!(2024 - 03 - 01)),
            sale_price: Some(d("180.00")),
            net_proceeds: d("160.00"),
            profit: Some(d("50.00")),
            roi: Some(d("0.4545")),
            sold_at: date!(2024 - 03 - 20),
            delivered_at: Some(date!(2024 - 03 - 05)),
        }
    }

    fn rules(findings: &[Finding]) -> Vec<Rule> {
        findings.iter().map(|f| f.rule).collect()
    }

    #[test]
    fn a_consistent_sale_has_no_findings() {
        assert_eq!(check_sale(&sale()), vec![]);
    }

    #[test]
    fn profit_within_a_cent_passes_and_beyond_fails() {
        let mut s = sale();
        s.profit = Some(d("50.01"));
        s.roi = None;
        assert_eq!(rules(&check_sale(&s)), vec![]);
        s.profit = Some(d("50.02"));
        let findings = check_sale(&s);
        assert_eq!(rules(&findings), vec![Rule::ProfitMismatch]);
        assert!(findings[0].message.contains("50.02"));
        assert!(findings[0].message.contains("50.00"));
    }

    #[test]
    fn roi_is_checked_against_the_recorded_profit_within_a_thousandth() {
        let mut s = sale();
        // 50 / 110 = 0.454545...
        s.roi = Some(d("0.4555"));
        assert_eq!(rules(&check_sale(&s)), vec![]);
        s.roi = Some(d("0.4556"));
        assert_eq!(rules(&check_sale(&s)), vec![Rule::RoiMismatch]);
        s.roi = Some(d("45.45")); // a percentage typed as a number
        assert_eq!(rules(&check_sale(&s)), vec![Rule::RoiMismatch]);
    }

    #[test]
    fn roi_is_not_checked_without_a_purchase_price() {
        let mut s = sale();
        s.purchase_price = Decimal::ZERO;
        s.profit = Some(d("160.00"));
        s.roi = Some(d("7"));
        assert_eq!(rules(&check_sale(&s)), vec![Rule::NonPositivePrice]);
    }

    #[test]
    fn dates_in_the_wrong_order_are_found() {
        let mut s = sale();
        s.sold_at = date!(2024 - 02 - 28);
        s.delivered_at = Some(date!(2024 - 02 - 27));
        assert_eq!(
            rules(&check_sale(&s)),
            vec![Rule::SaleBeforePurchase, Rule::DeliveryBeforePurchase]
        );
        // Bought and sold the same day is possible.
        s.sold_at = date!(2024 - 03 - 01);
        s.delivered_at = None;
        assert_eq!(rules(&check_sale(&s)), vec![]);
        // No purchase date: nothing to compare.
        s.purchase_date = None;
        s.sold_at = date!(2020 - 01 - 01);
        assert_eq!(rules(&check_sale(&s)), vec![]);
    }

    #[test]
    fn non_positive_prices_are_one_finding_naming_each_field() {
        let mut s = sale();
        s.purchase_price = d("0");
        s.net_proceeds = d("-5");
        s.profit = None;
        s.roi = None;
        let findings = check_sale(&s);
        assert_eq!(rules(&findings), vec![Rule::NonPositivePrice]);
        assert!(findings[0].message.contains("purchase_price = 0"));
        assert!(findings[0].message.contains("net_proceeds = -5"));
    }

    fn money<'a>(payout: &str, currency: Option<&'a str>) -> StockxMoney<'a> {
        StockxMoney {
            sale_price: Some(d("90.00")),
            order_currency: currency,
            total_payout: Some(d(payout)),
            payout_currency: currency,
        }
    }

    #[test]
    fn payout_mismatch_only_in_the_same_currency_and_beyond_a_cent() {
        let same = check_payout(d("76.81"), "EUR", &money("76.81", Some("EUR")));
        assert_eq!(same.findings, vec![]);
        assert_eq!(
            same.rules,
            vec![Rule::CurrencyMismatch, Rule::PayoutMismatch]
        );
        let within = check_payout(d("76.80"), "EUR", &money("76.81", Some("eur")));
        assert_eq!(within.findings, vec![]);
        let beyond = check_payout(d("80.00"), "EUR", &money("76.81", Some("EUR")));
        assert_eq!(rules(&beyond.findings), vec![Rule::PayoutMismatch]);
        assert_eq!(beyond.findings[0].details["difference"], json!(d("-3.19")));
    }

    #[test]
    fn another_currency_is_a_currency_mismatch_with_both_amounts_not_a_payout_comparison() {
        let usd = check_payout(d("80.00"), "EUR", &money("76.81", Some("USD")));
        assert_eq!(rules(&usd.findings), vec![Rule::CurrencyMismatch]);
        // Both rules decided: an old payout_mismatch is resolved, the currency one replaces it.
        assert_eq!(
            usd.rules,
            vec![Rule::CurrencyMismatch, Rule::PayoutMismatch]
        );
        let finding = &usd.findings[0];
        assert!(
            finding.message.contains("paid out 76.81 USD"),
            "{}",
            finding.message
        );
        assert!(finding.message.contains("80.00 EUR"), "{}", finding.message);
        assert_eq!(finding.details["stockx_total_payout"], json!(d("76.81")));
        assert_eq!(finding.details["net_proceeds"], json!(d("80.00")));
        assert_eq!(finding.details["stockx_payout_currency"], json!("USD"));
        assert_eq!(finding.details["currency"], json!("EUR"));
        // The order in USD, the payout converted to EUR: compared, and the order flagged.
        let mut converted = money("80.00", Some("EUR"));
        converted.order_currency = Some("USD");
        let checked = check_payout(d("80.00"), "EUR", &converted);
        assert_eq!(rules(&checked.findings), vec![Rule::CurrencyMismatch]);
        assert!(checked.findings[0].message.contains("sold for 90.00 USD"));
    }

    #[test]
    fn a_payout_without_a_currency_is_not_compared_and_says_so() {
        let unknown = check_payout(d("80.00"), "EUR", &money("38.03", None));
        assert_eq!(unknown.findings, vec![]);
        assert_eq!(unknown.rules, vec![], "nothing decided, nothing resolved");
        assert_eq!(unknown.notes.len(), 1);
        assert!(unknown.notes[0].contains("38.03"), "{:?}", unknown.notes);
        assert!(
            unknown.notes[0].contains("no currency"),
            "{:?}",
            unknown.notes
        );
        // The order's currency alone still tells a mismatch.
        let mut order_usd = money("38.03", None);
        order_usd.order_currency = Some("USD");
        let checked = check_payout(d("80.00"), "EUR", &order_usd);
        assert_eq!(rules(&checked.findings), vec![Rule::CurrencyMismatch]);
        assert_eq!(checked.rules, vec![Rule::CurrencyMismatch]);
    }

    fn item() -> OrderItemFacts {
        OrderItemFacts {
            sku: "B75806".into(),
            size: "8.5".into(),
            region: "US M".into(),
            order_product_id: Some("dunk".into()),
            order_product_name: Some("Nike Dunk Low Retro White Black Panda".into()),
            order_style_id: Some("DD1391-100".into()),
            order_variant_id: Some("dunk-10".into()),
            order_variant_value: Some("10".into()),
            catalog_product_id: Some("samba".into()),
            catalog_title: Some("adidas Samba OG Cloud White Core Black".into()),
            catalog_variant_id: Some("samba-8.5".into()),
        }
    }

    #[test]
    fn an_order_of_another_product_is_an_order_product_mismatch() {
        let checked = check_order_item(&item());
        assert_eq!(checked.rules, vec![Rule::OrderProductMismatch]);
        assert_eq!(rules(&checked.findings), vec![Rule::OrderProductMismatch]);
        let finding = &checked.findings[0];
        assert!(
            finding.message.contains("Nike Dunk Low"),
            "{}",
            finding.message
        );
        assert!(
            finding.message.contains("DD1391-100"),
            "{}",
            finding.message
        );
        assert!(finding.message.contains("B75806"), "{}", finding.message);
        assert!(finding.message.contains("Samba"), "{}", finding.message);
        assert_eq!(finding.details["order"]["stockx_product_id"], json!("dunk"));
        assert_eq!(
            finding.details["catalog"]["stockx_product_id"],
            json!("samba")
        );
        assert_eq!(finding.details["recorded_sku"], json!("B75806"));
    }

    #[test]
    fn the_same_product_in_another_size_is_a_mismatch_and_the_same_variant_passes() {
        let mut same = item();
        same.catalog_product_id = Some("dunk".into());
        same.catalog_variant_id = Some("dunk-9".into());
        let checked = check_order_item(&same);
        assert_eq!(rules(&checked.findings), vec![Rule::OrderProductMismatch]);
        assert!(checked.findings[0].message.contains("size 10"));
        same.catalog_variant_id = Some("dunk-10".into());
        let checked = check_order_item(&same);
        assert_eq!(
            (checked.rules, checked.findings),
            (vec![Rule::OrderProductMismatch], vec![])
        );
        // The variant not matched yet: the product alone decides.
        same.catalog_variant_id = None;
        assert_eq!(check_order_item(&same).findings, vec![]);
    }

    #[test]
    fn nothing_is_decided_until_both_sides_are_known() {
        let mut before_order = item();
        before_order.order_product_id = None;
        assert_eq!(check_order_item(&before_order), Checked::default());
        let mut before_catalog = item();
        before_catalog.catalog_product_id = None;
        assert_eq!(check_order_item(&before_catalog), Checked::default());
    }

    fn ds(values: &[&str]) -> Vec<Decimal> {
        values.iter().map(|v| d(v)).collect()
    }

    #[test]
    fn median_and_mad_by_hand() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&ds(&["3", "1", "2"])), Some(d("2")));
        assert_eq!(median(&ds(&["4", "1", "3", "2"])), Some(d("2.5")));
        // 180 190 200 210 400: median 200; deviations 20 10 0 10 200 → MAD 10.
        let v = ds(&["180", "190", "200", "210", "400"]);
        assert_eq!(median_absolute_deviation(&v, d("200")), Some(d("10")));
    }

    #[test]
    fn a_missing_digit_is_a_sale_price_outlier_a_normal_price_is_not() {
        let market = ds(&["180", "190", "200", "210", "220", "195"]);
        // median 197.5; deviations 17.5 7.5 2.5 12.5 22.5 2.5 → MAD 10; scaled 14.826.
        let finding =
            check_sale_price_outlier(d("20.00"), "EUR", &market, &[], &OUTLIER_POLICY).unwrap();
        assert_eq!(finding.rule, Rule::SalePriceOutlier);
        assert_eq!(finding.details["basis"], "stockx_market");
        assert_eq!(finding.details["median"], json!(d("197.50")));
        // (197.5 − 20) / 14.826 = 11.972... → 11.97
        assert_eq!(finding.details["robust_z"], json!(d("11.97")));
        assert!(
            finding.message.contains("median 197.50 over 6 prices"),
            "{}",
            finding.message
        );
        assert_eq!(
            check_sale_price_outlier(d("215.00"), "EUR", &market, &[], &OUTLIER_POLICY),
            None
        );
        // Far in MADs but within 35 % of the median: no warning (2 × 14.826 < 60 < 69.1).
        let tight = ds(&["200", "200", "200", "201", "199"]);
        assert_eq!(
            check_sale_price_outlier(d("260"), "EUR", &tight, &[], &OUTLIER_POLICY),
            None
        );
        // With MAD 0 the relative gap decides.
        assert!(check_sale_price_outlier(d("2000"), "EUR", &tight, &[], &OUTLIER_POLICY).is_some());
    }

    #[test]
    fn too_little_data_gives_no_warning_and_the_own_history_stands_in() {
        let market = ds(&["200", "205", "210", "195"]);
        let own = ds(&["150", "155", "160", "150", "152"]);
        // Four market prices are too few; the seller's own five decide (median 152, MAD 2).
        let finding =
            check_sale_price_outlier(d("1520"), "EUR", &market, &own, &OUTLIER_POLICY).unwrap();
        assert_eq!(finding.details["basis"], "own_history");
        assert_eq!(
            check_sale_price_outlier(d("1520"), "EUR", &market, &own[..4], &OUTLIER_POLICY),
            None,
            "no verdict without five samples anywhere"
        );
    }

    #[test]
    fn a_purchase_in_another_currency_stands_out_against_own_purchases() {
        let own = ds(&["110", "110", "115", "120", "105", "110"]);
        // 110 USD entered as 11000 (cents): far off.
        let finding =
            check_purchase_price_outlier(d("11000"), "EUR", &own, &OUTLIER_POLICY).unwrap();
        assert_eq!(finding.rule, Rule::PurchasePriceOutlier);
        assert_eq!(
            check_purchase_price_outlier(d("112"), "EUR", &own, &OUTLIER_POLICY),
            None
        );
        assert_eq!(
            check_purchase_price_outlier(d("11000"), "EUR", &own[..3], &OUTLIER_POLICY),
            None
        );
    }
}
