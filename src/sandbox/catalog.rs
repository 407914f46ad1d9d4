//! The sandbox's bundled catalog: real-looking sneakers, US men's sizes 7-13 with UK/EU/US W
//! conversions, deterministic market data in several currencies, and a few seller orders.

use std::collections::HashMap;

use axum::http::StatusCode;
use rust_decimal::prelude::*;
use serde_json::{json, Value};

use crate::stockx::normalize_style_id;

struct Sneaker {
    id: &'static str,
    style_id: &'static str,
    title: &'static str,
    brand: &'static str,
    colorway: &'static str,
    release: &'static str,
    retail_usd: u32,
    /// Typical lowest ask in EUR for US M 10.
    ask_eur: u32,
}

const SNEAKERS: &[Sneaker] = &[
    Sneaker {
        id: "5e6a1e57-1c7d-435a-82bd-5666a13560fe",
        style_id: "DD1391-100",
        title: "Nike Dunk Low Retro White Black Panda",
        brand: "Nike",
        colorway: "White/Black/White",
        release: "2021-03-10",
        retail_usd: 110,
        ask_eur: 112,
    },
    Sneaker {
        id: "0a1f54f2-7c40-4c84-9ab0-8a0a2f6a5f0e",
        style_id: "DD1391-103",
        title: "Nike Dunk Low Grey Fog",
        brand: "Nike",
        colorway: "White/Grey Fog",
        release: "2021-07-29",
        retail_usd: 110,
        ask_eur: 105,
    },
    Sneaker {
        id: "fa671f11-b94d-4596-a4fe-d91e0bd995a0",
        style_id: "HQ4276",
        title: "adidas Samba OG Collegiate Green",
        brand: "adidas",
        colorway: "Core White/Collegiate Green/Gum",
        release: "2024-02-01",
        retail_usd: 100,
        ask_eur: 128,
    },
    Sneaker {
        id: "9c1b6d7e-3a2f-4e8b-8f1d-2b7c4a5e6f70",
        style_id: "B75806",
        title: "adidas Samba OG Cloud White Core Black",
        brand: "adidas",
        colorway: "Cloud White/Core Black/Clear Granite",
        release: "2018-01-01",
        retail_usd: 100,
        ask_eur: 96,
    },
    Sneaker {
        id: "3d2c1b0a-9f8e-4d7c-b6a5-948372615040",
        style_id: "DZ5485-612",
        title: "Jordan 1 Retro High OG Chicago Lost and Found",
        brand: "Jordan",
        colorway: "Varsity Red/Black/Sail/Muslin",
        release: "2022-11-19",
        retail_usd: 180,
        ask_eur: 265,
    },
    Sneaker {
        id: "7b6a5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d",
        style_id: "CP9654",
        title: "adidas Yeezy Boost 350 V2 Zebra",
        brand: "adidas",
        colorway: "White/Core Black/Red",
        release: "2017-02-25",
        retail_usd: 230,
        ask_eur: 245,
    },
    Sneaker {
        id: "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
        style_id: "BB550WT1",
        title: "New Balance 550 White Green",
        brand: "New Balance",
        colorway: "White/Green",
        release: "2021-01-01",
        retail_usd: 110,
        ask_eur: 118,
    },
    Sneaker {
        id: "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e",
        style_id: "FD0774-101",
        title: "Nike Air Force 1 Low '07 White",
        brand: "Nike",
        colorway: "White/White",
        release: "2023-01-01",
        retail_usd: 115,
        ask_eur: 99,
    },
    Sneaker {
        id: "4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f7a",
        style_id: "1183A201-100",
        title: "ASICS Gel-Kayano 14 White Midnight",
        brand: "ASICS",
        colorway: "White/Midnight",
        release: "2023-05-12",
        retail_usd: 150,
        ask_eur: 142,
    },
];

/// US men's sizes and their EU equivalents.
const SIZES: &[(&str, &str)] = &[
    ("7", "40"),
    ("7.5", "40.5"),
    ("8", "41"),
    ("8.5", "42"),
    ("9", "42.5"),
    ("9.5", "43"),
    ("10", "44"),
    ("10.5", "44.5"),
    ("11", "45"),
    ("11.5", "45.5"),
    ("12", "46"),
    ("12.5", "47"),
    ("13", "47.5"),
];

/// Exchange rates from EUR, fixed for reproducibility.
const RATES: &[(&str, &str)] = &[
    ("EUR", "1"),
    ("USD", "1.08"),
    ("GBP", "0.86"),
    ("CHF", "0.95"),
];

/// A sale the sandbox knows as a seller order; the demo enters these through the entry view.
#[derive(Debug, Clone)]
pub struct BundledSale {
    pub order_number: &'static str,
    pub sku: &'static str,
    pub size: &'static str,
    pub sale_price: Decimal,
    pub payout: Decimal,
    pub currency: &'static str,
    pub sold_at: &'static str,
}

const ORDERS: &[(&str, &str, &str, u32, &str)] = &[
    ("323314425-323214184", "DD1391-100", "10", 140, "2024-03-20"),
    ("55476797-55376556", "HQ4276", "9.5", 150, "2024-05-02"),
    ("02-L0QT6MRVSG", "DZ5485-612", "11", 289, "2024-06-14"),
    ("412208765-412108544", "CP9654", "10.5", 260, "2024-07-01"),
    ("398877120-398776901", "BB550WT1", "9", 125, "2024-08-19"),
    ("405531982-405431760", "B75806", "8.5", 99, "2024-09-03"),
];

pub fn bundled_sales() -> Vec<BundledSale> {
    ORDERS
        .iter()
        .map(|(number, sku, size, price, sold)| {
            let price = Decimal::from(*price);
            BundledSale {
                order_number: number,
                sku,
                size,
                sale_price: price,
                payout: payout(price).0,
                currency: "EUR",
                sold_at: sold,
            }
        })
        .collect()
}

/// Transaction fee 8 %, payment processing 3 %, shipping 5: payout and the adjustments.
fn payout(price: Decimal) -> (Decimal, Vec<(String, Decimal, Option<Decimal>)>) {
    let fee = -(price * Decimal::new(8, 2)).round_dp(2);
    let processing = -(price * Decimal::new(3, 2)).round_dp(2);
    let shipping = Decimal::new(-500, 2);
    let adjustments = vec![
        (
            "Transaction Fee (8%)".to_string(),
            fee,
            Some(Decimal::new(8, 2)),
        ),
        (
            "Payment Proc. (3%)".to_string(),
            processing,
            Some(Decimal::new(3, 2)),
        ),
        ("Shipping Fee".to_string(), shipping, None),
    ];
    (price + fee + processing + shipping, adjustments)
}

pub struct Catalog {
    /// Sizes added while the sandbox runs: (product ID, US size, EU size).
    added: std::sync::Mutex<Vec<(String, String, String)>>,
}

impl Catalog {
    pub fn bundled() -> Catalog {
        Catalog {
            added: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub fn add_size(&self, product_id: &str, us: &str, eu: &str) {
        self.added.lock().expect("lock").push((
            product_id.to_string(),
            us.to_string(),
            eu.to_string(),
        ));
    }

    /// The bundled sizes and those added to this product, as (US, EU).
    fn sizes(&self, product_id: &str) -> Vec<(String, String)> {
        let mut sizes: Vec<(String, String)> = SIZES
            .iter()
            .map(|(us, eu)| (us.to_string(), eu.to_string()))
            .collect();
        sizes.extend(
            self.added
                .lock()
                .expect("lock")
                .iter()
                .filter(|(p, _, _)| p == product_id)
                .map(|(_, us, eu)| (us.clone(), eu.clone())),
        );
        sizes
    }

    fn sneaker(&self, id: &str) -> Option<&'static Sneaker> {
        SNEAKERS.iter().find(|s| s.id == id)
    }

    fn by_sku(&self, sku: &str) -> Option<&'static Sneaker> {
        let wanted = normalize_style_id(sku);
        SNEAKERS
            .iter()
            .find(|s| normalize_style_id(s.style_id) == wanted)
    }

    /// Like StockX: exact style IDs come back with near matches (same model, other colours).
    pub fn search(&self, query: &str) -> Vec<Value> {
        let q = normalize_style_id(query);
        let prefix: String = q.chars().take(6).collect();
        let words = query.to_lowercase();
        SNEAKERS
            .iter()
            .filter(|s| {
                let style = normalize_style_id(s.style_id);
                (prefix.len() >= 4 && style.starts_with(&prefix))
                    || s.title.to_lowercase().contains(&words)
            })
            .map(product_json)
            .collect()
    }

    pub fn product_json(&self, id: &str) -> Option<Value> {
        self.sneaker(id).map(product_json)
    }

    pub fn variants_json(&self, product_id: &str) -> Option<Vec<Value>> {
        let s = self.sneaker(product_id)?;
        Some(
            self.sizes(product_id)
                .iter()
                .map(|(us, eu)| variant_json(s, us, eu))
                .collect(),
        )
    }

    pub fn market_data(
        &self,
        product_id: &str,
        variant_id: Option<&str>,
        currency: &str,
    ) -> Result<Vec<Value>, (StatusCode, &'static str)> {
        if let Some(n) = synthetic_number(product_id) {
            return synthetic_market_data(product_id, n, variant_id, currency);
        }
        let s = self
            .sneaker(product_id)
            .ok_or((StatusCode::NOT_FOUND, "Product not found"))?;
        let rate = RATES
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(currency))
            .map(|(_, r)| Decimal::from_str(r).expect("rate"))
            .ok_or((StatusCode::BAD_REQUEST, "unsupported currencyCode"))?;
        Ok(self
            .sizes(product_id)
            .iter()
            .filter(|(us, _)| variant_id.is_none_or(|v| v == variant_id_of(s, us)))
            .map(|(us, _)| {
                let size = Decimal::from_str(us).unwrap_or(Decimal::TEN);
                // Bigger and smaller sizes sell for more; the biggest has no ask at all.
                let factor = Decimal::ONE + (size - Decimal::TEN).abs() * Decimal::new(3, 2);
                let ask = (Decimal::from(s.ask_eur) * factor * rate).round();
                let lowest = (us != "13").then_some(ask);
                let bid = (ask * Decimal::new(85, 2)).round();
                json!({
                    "productId": s.id,
                    "variantId": variant_id_of(s, us),
                    "currencyCode": currency.to_uppercase(),
                    "lowestAskAmount": lowest.map(|a| a.to_string()),
                    "highestBidAmount": bid.to_string(),
                    "sellFasterAmount": lowest.map(|a| (a - Decimal::ONE).to_string()),
                    "earnMoreAmount": lowest.map(|a| (a + Decimal::from(5)).to_string()),
                    "flexLowestAskAmount": null,
                })
            })
            .collect())
    }

    /// The bundled seller orders, as `GET /selling/orders/{orderNumber}` answers them.
    pub fn orders(&self) -> HashMap<String, Value> {
        bundled_sales()
            .into_iter()
            .filter_map(|sale| {
                let order = self.order_json(&OrderFacts {
                    order_number: sale.order_number,
                    sku: sale.sku,
                    size: sale.size,
                    sale_price: sale.sale_price,
                    currency: sale.currency,
                    sold_at: sale.sold_at,
                    status: "PAYOUTCOMPLETED",
                })?;
                Some((sale.order_number.to_string(), order))
            })
            .collect()
    }

    /// A seller order as `GET /selling/orders/{orderNumber}` answers it (DetailedOrder), or
    /// None when the SKU is not in the catalog.
    pub fn order_json(&self, f: &OrderFacts<'_>) -> Option<Value> {
        let s = self.by_sku(f.sku)?;
        let (total, adjustments) = payout(f.sale_price);
        let total_adjustments: Decimal = adjustments.iter().map(|a| a.1).sum();
        let flex = f.order_number.starts_with("02-");
        Some(json!({
            "askId": format!("ask-{}", f.order_number),
            "orderNumber": f.order_number,
            "listingId": format!("listing-{}", f.order_number),
            "amount": f.sale_price.to_string(),
            "currencyCode": f.currency,
            "createdAt": format!("{}T13:51:47.000Z", f.sold_at),
            "updatedAt": format!("{}T09:12:03.000Z", f.sold_at),
            "variant": {"variantId": variant_id_of(s, f.size),
                        "variantName": format!("{}:{}", slug(s.title), f.size),
                        "variantValue": f.size},
            "product": {"productId": s.id, "productName": s.title, "styleId": s.style_id},
            "status": f.status,
            "inventoryType": if flex { "FLEX" } else { "STANDARD" },
            "shipment": {"shipByDate": null, "trackingNumber": "1Z999AA10123456784",
                         "trackingUrl": null, "carrierCode": "UPS",
                         "shippingLabelUrl": null, "shippingDocumentUrl": null},
            "initiatedShipments": {"inbound": {"displayId": "IB-1"}},
            "authenticationDetails": {"status": "AUTHENTICATED", "failureNotes": null},
            "payout": {
                "totalPayout": total.to_string(),
                "salePrice": f.sale_price.to_string(),
                "totalAdjustments": total_adjustments.to_string(),
                "currencyCode": f.currency,
                "adjustments": adjustments.iter().map(|(kind, amount, pct)| json!({
                    "adjustmentType": kind, "amount": amount.to_string(),
                    "percentage": pct.map(|p| p.to_string()),
                })).collect::<Vec<_>>(),
            },
        }))
    }
}

/// What a generated or bundled seller order is made of.
#[derive(Debug, Clone)]
pub struct OrderFacts<'a> {
    pub order_number: &'a str,
    pub sku: &'a str,
    pub size: &'a str,
    pub sale_price: Decimal,
    pub currency: &'a str,
    /// `YYYY-MM-DD`: the order's creation day.
    pub sold_at: &'a str,
    pub status: &'a str,
}

/// A generated sale (for the bulk benchmark and tests): the order StockX knows and what the
/// seller recorded of it.
#[derive(Debug, Clone)]
pub struct GeneratedSale {
    pub order_number: String,
    pub sku: &'static str,
    pub size: &'static str,
    pub sale_price: Decimal,
    /// StockX's payout (the seller recorded it as the net proceeds).
    pub payout: Decimal,
    pub currency: &'static str,
    pub sold_at: time::Date,
    /// StockX's status: `COMPLETED` (listed in the history) or, for every 50th, `PAYOUTPENDING`
    /// (still listed among the active orders).
    pub status: &'static str,
}

impl GeneratedSale {
    /// The sale as the seller enters it: net proceeds equal to StockX's payout (so the payout
    /// check passes), bought 20 days before the sale for 30 less than it sold for.
    pub fn entry(&self) -> crate::sales::SaleEntry<'_> {
        crate::sales::SaleEntry {
            order_number: &self.order_number,
            sku: self.sku,
            size: self.size,
            supplier: "Bulk Supplier",
            purchase_price: self.sale_price - Decimal::from(30),
            purchase_date: Some(self.sold_at - time::Duration::days(20)),
            sale_price: Some(self.sale_price),
            net_proceeds: self.payout,
            profit: None,
            sold_at: self.sold_at,
        }
    }
}

/// `count` sales over the first `skus` bundled products (1 to all), sold over the `days` days
/// up to 2026-10-31, in an order that is not the order of their dates (as a Notion export is).
/// Deterministic: the same arguments give the same sales.
pub fn generated_sales(count: usize, skus: usize, days: u32) -> Vec<GeneratedSale> {
    let skus = skus.clamp(1, SNEAKERS.len());
    let last = time::macros::date!(2026 - 10 - 31);
    // Sizes that every bundled product has.
    let sizes = ["8", "8.5", "9", "9.5", "10", "10.5", "11", "12"];
    (0..count)
        .map(|i| {
            // A multiplicative hash spreads the dates over the days without a random source.
            let mix = (i as u64).wrapping_mul(2_654_435_761) % 4_294_967_291;
            let days_back = (mix % u64::from(days.max(1))) as i64;
            let sold = last - time::Duration::days(days_back);
            let s = &SNEAKERS[i % skus];
            let price = Decimal::from(s.ask_eur) + Decimal::from((mix % 60) as i64);
            let status = if i % 50 == 49 {
                "PAYOUTPENDING"
            } else {
                "COMPLETED"
            };
            GeneratedSale {
                order_number: format!("{}-{}", 700_000_000 + i * 3, 600_000_000 + i * 7),
                sku: s.style_id,
                size: sizes[(mix / 7) as usize % sizes.len()],
                sale_price: price,
                payout: payout(price).0,
                currency: "EUR",
                sold_at: sold,
                status,
            }
        })
        .collect()
}

/// Products named `synthetic-N` (N a number) exist for market data only: the benchmark's
/// hundreds of products, which the bundled catalog does not have. Lowest ask 100 + N in
/// every currency, bid 85 % of it, sizes as bundled; variant IDs `synthetic-N-<US size>`.
fn synthetic_number(product_id: &str) -> Option<u32> {
    product_id.strip_prefix("synthetic-")?.parse().ok()
}

fn synthetic_market_data(
    product_id: &str,
    n: u32,
    variant_id: Option<&str>,
    currency: &str,
) -> Result<Vec<Value>, (StatusCode, &'static str)> {
    let ask = Decimal::from(100 + n);
    let bid = (ask * Decimal::new(85, 2)).round();
    Ok(SIZES
        .iter()
        .map(|(us, _)| format!("{product_id}-{us}"))
        .filter(|v| variant_id.is_none_or(|wanted| wanted == v))
        .map(|v| {
            json!({
                "productId": product_id,
                "variantId": v,
                "currencyCode": currency.to_uppercase(),
                "lowestAskAmount": ask.to_string(),
                "highestBidAmount": bid.to_string(),
                "sellFasterAmount": (ask - Decimal::ONE).to_string(),
                "earnMoreAmount": (ask + Decimal::from(5)).to_string(),
                "flexLowestAskAmount": null,
            })
        })
        .collect())
}

fn slug(title: &str) -> String {
    title
        .to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

fn variant_id_of(s: &Sneaker, us: &str) -> String {
    format!("{}-{}", &s.id[..8], us.replace('.', "5"))
}

fn product_json(s: &Sneaker) -> Value {
    json!({
        "productId": s.id,
        "urlKey": slug(s.title),
        "styleId": s.style_id,
        "productType": "sneakers",
        "title": s.title,
        "brand": s.brand,
        "productAttributes": {
            "gender": "men", "season": null, "releaseDate": s.release,
            "retailPrice": s.retail_usd, "colorway": s.colorway, "color": null,
        },
        "sizeChart": {
            "availableConversions": [
                {"name": "US M", "type": "us m"}, {"name": "US W", "type": "us w"},
                {"name": "UK", "type": "uk"}, {"name": "EU", "type": "eu"},
            ],
            "defaultConversion": {"name": "US M", "type": "us m"},
        },
        "isFlexEligible": true,
        "isDirectEligible": false,
    })
}

fn variant_json(s: &Sneaker, us: &str, eu: &str) -> Value {
    let us_num = Decimal::from_str(us).unwrap_or(Decimal::TEN);
    let uk = (us_num - Decimal::ONE).normalize();
    let women = (us_num + Decimal::new(15, 1)).normalize();
    json!({
        "productId": s.id,
        "variantId": variant_id_of(s, us),
        "variantName": format!("{}:{}", slug(s.title), us),
        "variantValue": us,
        "sizeChart": {
            "defaultConversion": {"size": format!("US M {us}"), "type": "us m"},
            "availableConversions": [
                {"size": format!("US M {us}"), "type": "us m"},
                {"size": format!("US W {women}"), "type": "us w"},
                {"size": format!("UK {uk}"), "type": "uk"},
                {"size": format!("EU {eu}"), "type": "eu"},
            ],
        },
        "gtins": [{"identifier": format!("19{:011}", (us_num * Decimal::TEN).to_u64().unwrap_or(0) + u64::from(s.retail_usd) * 1000), "type": "UPC"}],
        "isFlexEligible": true,
        "isDirectEligible": false,
    })
}
