//! The validation rules: pure functions from a sale's facts to findings.
//!
//! The business's checks (profit = net proceeds − purchase price within 0.01, ROI =
//! profit / purchase price within 0.001, bought before sold) plus delivery after purchase,
//! positive prices and StockX's payout against the recorded net proceeds. A finding is a
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
            Rule::SalePriceOutlier => "sale_price_outlier",
            Rule::PurchasePriceOutlier => "purchase_price_outlier",
        }
    }
}

/// Every rule.
pub const ALL_RULES: [Rule; 10] = [
    Rule::ProfitMismatch,
    Rule::RoiMismatch,
    Rule::SaleBeforePurchase,
    Rule::DeliveryBeforePurchase,
    Rule::PayoutMismatch,
    Rule::StockxProductNotFound,
    Rule::StockxVariantNotFound,
    Rule::NonPositivePrice,
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

/// StockX's payout against what the business recorded as net proceeds. Different currencies
/// cannot be compared: no finding (both amounts are stored on the order).
pub fn check_payout(
    net_proceeds: Decimal,
    currency: &str,
    payout: Decimal,
    payout_currency: &str,
) -> Option<Finding> {
    if !currency.eq_ignore_ascii_case(payout_currency) {
        return None;
    }
    let difference = payout - net_proceeds;
    (difference.abs() > PAYOUT_TOLERANCE).then(|| Finding {
        rule: Rule::PayoutMismatch,
        message: format!(
            "StockX paid out {payout} {payout_currency} but net proceeds are recorded as {net_proceeds} {currency}"
        ),
        details: json!({"stockx_total_payout": payout, "net_proceeds": net_proceeds,
                        "currency": currency, "difference": difference}),
    })
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

    #[test]
    fn payout_mismatch_only_in_the_same_currency_and_beyond_a_cent() {
        assert_eq!(check_payout(d("76.81"), "EUR", d("76.81"), "EUR"), None);
        assert_eq!(check_payout(d("76.80"), "EUR", d("76.81"), "eur"), None);
        let finding = check_payout(d("80.00"), "EUR", d("76.81"), "EUR").unwrap();
        assert_eq!(finding.rule, Rule::PayoutMismatch);
        assert_eq!(finding.details["difference"], json!(d("-3.19")));
        assert_eq!(check_payout(d("80.00"), "EUR", d("76.81"), "USD"), None);
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
