//! `integration.market_settings`: the `[market]` settings the reporting views compute with
//! (a view cannot read the worker's configuration). One row; the worker writes it at start.

use rust_decimal::Decimal;
use sqlx::PgPool;

use crate::config::Settings;

/// The row, as the views read it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ValuationSettings {
    pub currency: String,
    pub dead_stock_days: i32,
    pub fee_lookback_days: i32,
    pub fee_min_orders: i32,
    pub fallback_fee_rate: Decimal,
    pub fallback_fixed_fee: Decimal,
}

impl ValuationSettings {
    pub fn from_settings(settings: &Settings) -> ValuationSettings {
        let m = &settings.market;
        let int = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        ValuationSettings {
            currency: settings.stockx.currency.clone(),
            dead_stock_days: int(m.dead_stock_days),
            fee_lookback_days: int(m.fee_lookback_days),
            fee_min_orders: int(m.fee_min_orders),
            fallback_fee_rate: m.fallback_fee_rate,
            fallback_fixed_fee: m.fallback_fixed_fee,
        }
    }
}

pub async fn write_settings(pool: &PgPool, s: &ValuationSettings) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO integration.market_settings AS m
             (id, currency, dead_stock_days, fee_lookback_days, fee_min_orders,
              fallback_fee_rate, fallback_fixed_fee, updated_at)
         VALUES (true, $1, $2, $3, $4, $5, $6, now())
         ON CONFLICT (id) DO UPDATE
         SET currency = EXCLUDED.currency, dead_stock_days = EXCLUDED.dead_stock_days,
             fee_lookback_days = EXCLUDED.fee_lookback_days,
             fee_min_orders = EXCLUDED.fee_min_orders,
             fallback_fee_rate = EXCLUDED.fallback_fee_rate,
             fallback_fixed_fee = EXCLUDED.fallback_fixed_fee, updated_at = now()
         WHERE (m.currency, m.dead_stock_days, m.fee_lookback_days, m.fee_min_orders,
                m.fallback_fee_rate, m.fallback_fixed_fee)
               IS DISTINCT FROM
               (EXCLUDED.currency, EXCLUDED.dead_stock_days, EXCLUDED.fee_lookback_days,
                EXCLUDED.fee_min_orders, EXCLUDED.fallback_fee_rate, EXCLUDED.fallback_fixed_fee)",
    )
    .bind(&s.currency)
    .bind(s.dead_stock_days)
    .bind(s.fee_lookback_days)
    .bind(s.fee_min_orders)
    .bind(s.fallback_fee_rate)
    .bind(s.fallback_fixed_fee)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn read_settings(pool: &PgPool) -> Result<ValuationSettings, sqlx::Error> {
    sqlx::query_as(
        "SELECT currency, dead_stock_days, fee_lookback_days, fee_min_orders, fallback_fee_rate,
                fallback_fixed_fee
         FROM integration.market_settings",
    )
    .fetch_one(pool)
    .await
}
