-- What the stock is worth (issue 14): seller fee rates, the valuation of unsold stock, dead
-- stock and market trends, for Metabase and Grafana (readable by stockx_sync_reader).
--
-- "Unsold" is the sales store's definition (src/sales/market.rs): in stock or listed, and no
-- order recorded for it. Prices are in integration.market_settings.currency, the currency
-- market data is fetched in; purchase prices are taken to be in it too.

-- The seller's effective fee rate per currency. From the seller's own enriched orders sold in
-- the last fee_lookback_days: (sale price − payout) / sale price over all of them, the payout
-- being StockX's total payout or, without it, sale price + adjustments (which are negative).
-- With fewer than fee_min_orders such orders, the configured fallback schedule: a share of the
-- price plus a fixed fee per item. fee_source says which was used.
CREATE VIEW reporting.seller_fee_rates AS
WITH s AS (SELECT * FROM integration.market_settings),
own AS (
    SELECT coalesce(o.stockx_currency, o.currency) AS currency,
           count(*) AS orders,
           sum(coalesce(o.stockx_sale_price, o.sale_price)) AS sales,
           sum(coalesce(o.stockx_sale_price, o.sale_price)
               - coalesce(o.stockx_total_payout,
                          coalesce(o.stockx_sale_price, o.sale_price) + o.stockx_total_adjustments))
               AS fees
    FROM platforms.stockx_orders o CROSS JOIN s
    WHERE o.enrichment_status = 'enriched'
      AND coalesce(o.stockx_sale_price, o.sale_price) > 0
      AND (o.stockx_total_payout IS NOT NULL OR o.stockx_total_adjustments IS NOT NULL)
      AND o.sold_at >= current_date - s.fee_lookback_days
    GROUP BY 1
),
currencies AS (SELECT currency FROM own UNION SELECT currency FROM s)
SELECT c.currency,
       coalesce(own.orders, 0)                                    AS orders,
       CASE WHEN own.orders >= s.fee_min_orders
            THEN round(own.fees / own.sales, 4) ELSE s.fallback_fee_rate END AS fee_rate,
       CASE WHEN own.orders >= s.fee_min_orders
            THEN 0::numeric ELSE s.fallback_fixed_fee END        AS fixed_fee,
       CASE WHEN own.orders >= s.fee_min_orders
            THEN 'own_orders' ELSE 'fallback' END                 AS fee_source,
       s.fee_lookback_days,
       s.fee_min_orders
FROM currencies c
CROSS JOIN s
LEFT JOIN own ON own.currency = c.currency;

-- Each unsold item: what it cost, how long it has been held, what StockX's market says, and
-- what selling it would pay after fees. expected_payout: selling now (to the highest bid);
-- expected_payout_listed: listing at the lowest ask. Both NULL without market data.
CREATE VIEW reporting.inventory_valuation AS
SELECT i.id                                              AS inventory_id,
       p.sku,
       p.name                                            AS product_name,
       sz.value                                          AS size,
       sz.region                                         AS size_region,
       sup.name                                          AS supplier,
       i.status,
       i.purchase_price,
       i.purchase_date,
       current_date - coalesce(i.purchase_date, i.created_at::date) AS days_held,
       s.currency,
       m.highest_bid,
       m.lowest_ask,
       f.fee_rate,
       f.fixed_fee,
       f.fee_source,
       m.expected_payout,
       m.expected_payout_listed,
       m.expected_payout - i.purchase_price             AS unrealised_profit,
       CASE WHEN i.purchase_price > 0
            THEN round((m.expected_payout - i.purchase_price) / i.purchase_price, 4)
       END                                               AS unrealised_roi,
       m.fetched_at                                      AS market_as_of
FROM products.inventory i
-- LEFT joins on unique keys (the foreign keys guarantee a row): a query that reads none of
-- their columns (the totals) lets the planner drop them.
LEFT JOIN products.products p     ON p.id = i.product_id
LEFT JOIN products.sizes sz       ON sz.id = i.size_id
LEFT JOIN products.suppliers sup  ON sup.id = i.supplier_id
CROSS JOIN integration.market_settings s
LEFT JOIN reporting.seller_fee_rates f ON f.currency = s.currency
-- The payouts per variant (a few thousand rows), not per item (up to 100,000).
LEFT JOIN (
    SELECT md.stockx_variant_id, md.currency, md.highest_bid, md.lowest_ask, md.fetched_at,
           round(md.highest_bid * (1 - mf.fee_rate) - mf.fixed_fee, 2) AS expected_payout,
           round(md.lowest_ask * (1 - mf.fee_rate) - mf.fixed_fee, 2)  AS expected_payout_listed
    FROM platforms.marketplace_data md
    JOIN integration.market_settings ms ON ms.currency = md.currency
    LEFT JOIN reporting.seller_fee_rates mf ON mf.currency = md.currency
) m ON m.stockx_variant_id = i.stockx_variant_id AND m.currency = s.currency
WHERE i.status IN ('in_stock', 'listed')
  AND NOT EXISTS (SELECT 1 FROM platforms.stockx_listings l
                  JOIN platforms.stockx_orders o ON o.listing_id = l.id
                  WHERE l.inventory_id = i.id);

-- The whole stock's value per currency, as the report and the dashboard show it: grouped by
-- variant first, so the payout arithmetic runs per variant rather than per item (the figures
-- equal the sums over reporting.inventory_valuation). Unrealised profit counts the items with
-- market data only.
CREATE VIEW reporting.inventory_valuation_totals AS
WITH held AS (
    SELECT i.stockx_variant_id,
           count(*)                 AS items,
           sum(i.purchase_price)    AS purchase_total
    FROM products.inventory i
    WHERE i.status IN ('in_stock', 'listed')
      AND NOT EXISTS (SELECT 1 FROM platforms.stockx_listings l
                      JOIN platforms.stockx_orders o ON o.listing_id = l.id
                      WHERE l.inventory_id = i.id)
    GROUP BY i.stockx_variant_id
)
SELECT s.currency,
       coalesce(sum(h.items), 0)::bigint                                    AS items,
       coalesce(sum(h.purchase_total), 0)                                   AS purchase_total,
       coalesce(sum(h.items) FILTER (WHERE m.expected_payout IS NULL), 0)::bigint
                                                                            AS items_without_market_data,
       sum(h.items * m.expected_payout)                                     AS expected_payout_total,
       sum(h.items * m.expected_payout_listed)                              AS expected_payout_listed_total,
       sum(h.items * m.expected_payout - h.purchase_total)
           FILTER (WHERE m.expected_payout IS NOT NULL)                     AS unrealised_profit,
       max(m.fetched_at)                                                    AS market_as_of,
       max(f.fee_source)                                                    AS fee_source,
       max(f.fee_rate)                                                      AS fee_rate
FROM integration.market_settings s
LEFT JOIN reporting.seller_fee_rates f ON f.currency = s.currency
LEFT JOIN held h ON true
LEFT JOIN (
    SELECT md.stockx_variant_id, md.fetched_at,
           round(md.highest_bid * (1 - mf.fee_rate) - mf.fixed_fee, 2) AS expected_payout,
           round(md.lowest_ask * (1 - mf.fee_rate) - mf.fixed_fee, 2)  AS expected_payout_listed
    FROM platforms.marketplace_data md
    JOIN integration.market_settings ms ON ms.currency = md.currency
    LEFT JOIN reporting.seller_fee_rates mf ON mf.currency = md.currency
) m ON m.stockx_variant_id = h.stockx_variant_id
GROUP BY s.currency;

-- Unsold items held longer than dead_stock_days, or whose expected payout (selling now) is
-- below what they cost.
CREATE VIEW reporting.dead_stock AS
SELECT v.*,
       v.days_held > s.dead_stock_days                  AS held_too_long,
       coalesce(v.expected_payout < v.purchase_price, false) AS below_purchase_price,
       concat_ws('; ',
           CASE WHEN v.days_held > s.dead_stock_days
                THEN 'held ' || v.days_held || ' days (more than ' || s.dead_stock_days || ')' END,
           CASE WHEN v.expected_payout < v.purchase_price
                THEN 'expected payout ' || v.expected_payout || ' below purchase price '
                     || v.purchase_price END)           AS reason
FROM reporting.inventory_valuation v
CROSS JOIN integration.market_settings s
WHERE v.days_held > s.dead_stock_days OR v.expected_payout < v.purchase_price;

-- Per product and size (variant) and currency: the latest prices and their change over 7 and
-- 30 days (against the last day on or before latest day − 7 / − 30; NULL without history that
-- old). Sizes are named where the business holds or held a pair of that variant.
CREATE VIEW reporting.market_trend AS
WITH latest AS (
    SELECT DISTINCT ON (stockx_variant_id, currency) *
    FROM platforms.market_price_history
    ORDER BY stockx_variant_id, currency, day DESC
)
SELECT p.sku,
       p.name                                   AS product_name,
       sz.value                                 AS size,
       sz.region                                AS size_region,
       l.stockx_variant_id,
       l.currency,
       l.day                                    AS as_of,
       l.lowest_ask,
       l.highest_bid,
       w7.lowest_ask                            AS lowest_ask_7d_ago,
       w7.highest_bid                           AS highest_bid_7d_ago,
       l.lowest_ask - w7.lowest_ask             AS lowest_ask_change_7d,
       l.highest_bid - w7.highest_bid           AS highest_bid_change_7d,
       round((l.highest_bid - w7.highest_bid) / nullif(w7.highest_bid, 0), 4)
                                                AS highest_bid_change_7d_pct,
       w30.lowest_ask                           AS lowest_ask_30d_ago,
       w30.highest_bid                          AS highest_bid_30d_ago,
       l.lowest_ask - w30.lowest_ask            AS lowest_ask_change_30d,
       l.highest_bid - w30.highest_bid          AS highest_bid_change_30d,
       round((l.highest_bid - w30.highest_bid) / nullif(w30.highest_bid, 0), 4)
                                                AS highest_bid_change_30d_pct
FROM latest l
JOIN products.products p ON p.id = l.product_id
LEFT JOIN LATERAL (
    SELECT i.size_id FROM products.inventory i
    WHERE i.stockx_variant_id = l.stockx_variant_id LIMIT 1
) held ON true
LEFT JOIN products.sizes sz ON sz.id = held.size_id
LEFT JOIN LATERAL (
    SELECT h.lowest_ask, h.highest_bid FROM platforms.market_price_history h
    WHERE h.stockx_variant_id = l.stockx_variant_id AND h.currency = l.currency
      AND h.day <= l.day - 7
    ORDER BY h.day DESC LIMIT 1
) w7 ON true
LEFT JOIN LATERAL (
    SELECT h.lowest_ask, h.highest_bid FROM platforms.market_price_history h
    WHERE h.stockx_variant_id = l.stockx_variant_id AND h.currency = l.currency
      AND h.day <= l.day - 30
    ORDER BY h.day DESC LIMIT 1
) w30 ON true;

-- The valuation reads unsold items; the trend names a variant's size.
CREATE INDEX inventory_unsold_idx ON products.inventory (product_id)
    WHERE status IN ('in_stock', 'listed');
CREATE INDEX inventory_variant_idx ON products.inventory (stockx_variant_id);

GRANT SELECT ON reporting.seller_fee_rates, reporting.inventory_valuation,
                reporting.inventory_valuation_totals, reporting.dead_stock, reporting.market_trend
    TO stockx_sync_reader, stockx_sync_worker;
