//! The price-outlier rules of one order: reads the samples through the sales store and asks the
//! pure rules in `validate` (`sale_price_outlier`, `purchase_price_outlier`). The enrichment of
//! an order runs it beside the other sale rules.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::sales;
use crate::validate::{self, Finding, Rule, OUTLIER_POLICY};

/// Days either side of the sale date whose market prices count as "the market at the sale".
pub const MARKET_WINDOW_DAYS: i32 = 3;
/// The seller's own prices compared with: the most recent this many.
pub const OWN_HISTORY_LIMIT: i64 = 20;

/// The rules checked (always both, so that a warning whose price was corrected is resolved)
/// and what they found.
pub struct OutlierCheck {
    pub checked: Vec<Rule>,
    pub findings: Vec<Finding>,
}

pub async fn check_order(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<OutlierCheck, sqlx::Error> {
    let mut check = OutlierCheck {
        checked: vec![Rule::SalePriceOutlier, Rule::PurchasePriceOutlier],
        findings: Vec::new(),
    };
    let Some(facts) = sales::outlier_facts(conn, order_id).await? else {
        return Ok(check);
    };
    if let Some(sale_price) = facts.sale_price {
        let market = match &facts.stockx_variant_id {
            Some(variant) => {
                sales::market_samples_around(
                    conn,
                    variant,
                    &facts.currency,
                    facts.sold_at,
                    MARKET_WINDOW_DAYS,
                )
                .await?
            }
            None => Vec::new(),
        };
        let own =
            sales::own_sale_prices(conn, order_id, &facts.currency, OWN_HISTORY_LIMIT).await?;
        check.findings.extend(validate::check_sale_price_outlier(
            sale_price,
            &facts.currency,
            &market,
            &own,
            &OUTLIER_POLICY,
        ));
    }
    let own = sales::own_purchase_prices(conn, facts.inventory_id, OWN_HISTORY_LIMIT).await?;
    check
        .findings
        .extend(validate::check_purchase_price_outlier(
            facts.purchase_price,
            &facts.currency,
            &own,
            &OUTLIER_POLICY,
        ));
    Ok(check)
}
