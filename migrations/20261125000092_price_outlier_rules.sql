-- The price-outlier rules (issue 14): sale_price_outlier and purchase_price_outlier join the
-- rule codes a warning may carry. The list is the whole of src/validate's Rule::code.
ALTER TABLE integration.validation_warnings DROP CONSTRAINT validation_warnings_rule_check;
ALTER TABLE integration.validation_warnings ADD CONSTRAINT validation_warnings_rule_check
    CHECK (rule IN ('profit_mismatch', 'roi_mismatch', 'sale_before_purchase',
                    'delivery_before_purchase', 'payout_mismatch',
                    'stockx_product_not_found', 'stockx_variant_not_found',
                    'non_positive_price', 'sale_price_outlier', 'purchase_price_outlier'));

-- The outlier rules read the market of a variant around a sale date (the history's primary
-- key serves that) and the seller's own sales and purchases of the same product and size.
CREATE INDEX inventory_product_size_idx ON products.inventory (product_id, size_id);
