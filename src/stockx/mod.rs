//! StockX: the real API v2 client (`client`), its JSON (`types`) and size matching
//! (`variants`). The worker's only way to StockX; tests point it at the local sandbox or
//! wiremock, never at a stub in process.

mod client;
mod pace;
pub mod types;
pub mod variants;

pub use client::{ClientConfig, StockxClient, StockxError};
pub use types::{DetailedOrder, ListOrder, MarketData, OrderPage, Product, Variant};
pub use variants::{match_variant, normalize_style_id};

use crate::config::Settings;

/// A client from the settings, or None when a credential is missing (the worker then
/// validates only).
pub fn client_from_settings(settings: &Settings) -> Result<Option<StockxClient>, StockxError> {
    let s = &settings.stockx;
    let (Some(api_key), Some(client_id), Some(client_secret), Some(refresh_token)) = (
        s.api_key.clone(),
        s.client_id.clone(),
        s.client_secret.clone(),
        s.refresh_token.clone(),
    ) else {
        return Ok(None);
    };
    StockxClient::new(ClientConfig {
        api_url: s.api_url.clone(),
        auth_url: s.auth_url.clone(),
        api_key,
        client_id,
        client_secret,
        refresh_token,
        requests_per_second: s.requests_per_second,
        daily_budget: s.daily_request_budget,
        timeout: settings.stockx_timeout(),
    })
    .map(Some)
}
