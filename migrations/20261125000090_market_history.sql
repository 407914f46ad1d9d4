-- Market refresh (issue 14): StockX's prices per variant, currency and day, and the settings
-- the valuation views read.
--
-- platforms.marketplace_data stays the latest price per variant and currency (enrichment and
-- the refresh both write it); this table keeps one row per variant, currency and day, upserted
-- by the daily refresh, so that trends can be drawn and a sale can be compared with the market
-- of its own date.
CREATE TABLE platforms.market_price_history (
    stockx_variant_id  text NOT NULL,
    currency           text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    day                date NOT NULL,
    product_id         uuid NOT NULL REFERENCES products.products (id),
    stockx_product_id  text NOT NULL,
    lowest_ask         numeric(12,2),
    highest_bid        numeric(12,2),
    sell_faster        numeric(12,2),
    earn_more          numeric(12,2),
    fetched_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stockx_variant_id, currency, day)
);
-- "Was this product refreshed today?" and the trend per product.
CREATE INDEX market_price_history_product_day_idx
    ON platforms.market_price_history (product_id, currency, day);

-- The settings the reporting views need (a view cannot read the worker's configuration). One
-- row; the worker writes its `[market]` settings here at start, the defaults stand until then.
CREATE TABLE integration.market_settings (
    id                  boolean PRIMARY KEY DEFAULT true CHECK (id),
    -- The currency market data is fetched and valued in (stockx.currency).
    currency            text NOT NULL DEFAULT 'EUR' CHECK (currency ~ '^[A-Z]{3}$'),
    -- Held longer than this: dead stock.
    dead_stock_days     integer NOT NULL DEFAULT 90 CHECK (dead_stock_days > 0),
    -- The seller's own fee rate is derived from enriched orders sold in this many days, when
    -- there are at least fee_min_orders of them in the currency; else the fallback schedule.
    fee_lookback_days   integer NOT NULL DEFAULT 180 CHECK (fee_lookback_days > 0),
    fee_min_orders      integer NOT NULL DEFAULT 10 CHECK (fee_min_orders > 0),
    -- StockX's published seller fees: transaction fee 8 % + payment processing 3 %, plus a
    -- fixed shipping fee per item.
    fallback_fee_rate   numeric(6,4) NOT NULL DEFAULT 0.11
                        CHECK (fallback_fee_rate >= 0 AND fallback_fee_rate < 1),
    fallback_fixed_fee  numeric(12,2) NOT NULL DEFAULT 5.00 CHECK (fallback_fixed_fee >= 0),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
INSERT INTO integration.market_settings DEFAULT VALUES;
-- Statistics now: the views cross-join this one-row table, and without statistics the planner
-- assumes thousands of rows, prices a count over an empty stock in the billions and
-- JIT-compiles it (seconds of CPU). Nothing changes its row count later.
ANALYZE integration.market_settings;

GRANT SELECT, INSERT, UPDATE ON platforms.market_price_history TO stockx_sync_worker;
GRANT SELECT ON platforms.market_price_history TO stockx_sync_reader;
GRANT SELECT, INSERT, UPDATE ON integration.market_settings TO stockx_sync_worker;
GRANT SELECT ON integration.market_settings TO stockx_sync_reader;
