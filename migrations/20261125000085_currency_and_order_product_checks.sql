-- Two checks of an order against what StockX says of it (issue 12, items 3 and 4):
-- `currency_mismatch` (StockX's order or payout in another currency than the sale recorded),
-- and `order_product_mismatch` (StockX's order is of another product or size than the recorded
-- SKU's catalog match). The order keeps what StockX says of its own currency and product, so
-- that either job (order or inventory), whichever runs second, can compare.

-- stockx_currency stays the payout's currency (NULL when StockX's payout names none: unknown,
-- not guessed); the order's own currencyCode is kept beside it.
ALTER TABLE platforms.stockx_orders
    ADD COLUMN stockx_order_currency text,
    ADD COLUMN stockx_product_name   text,
    ADD COLUMN stockx_style_id       text,
    ADD COLUMN stockx_variant_value  text;

COMMENT ON COLUMN platforms.stockx_orders.stockx_currency IS
    'The currency StockX names for the payout; NULL when its payout names none.';
COMMENT ON COLUMN platforms.stockx_orders.stockx_order_currency IS
    'The currencyCode of StockX''s order (its sale price).';

-- Every rule code of the contract (CONTRACT.md), the outlier rules included, so that the
-- helpers adding rules do not each rewrite this list.
ALTER TABLE integration.validation_warnings DROP CONSTRAINT validation_warnings_rule_check;
ALTER TABLE integration.validation_warnings ADD CONSTRAINT validation_warnings_rule_check
    CHECK (rule IN (
        'profit_mismatch', 'roi_mismatch', 'sale_before_purchase', 'delivery_before_purchase',
        'payout_mismatch', 'stockx_product_not_found', 'stockx_variant_not_found',
        'non_positive_price', 'currency_mismatch', 'order_product_mismatch',
        'sale_price_outlier', 'purchase_price_outlier'));
