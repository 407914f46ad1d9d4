-- The price-outlier rules (issue 14): sale_price_outlier and purchase_price_outlier. Their
-- codes are already allowed on the warnings table: migration 085 lists every rule code of the
-- contract.

-- The outlier rules read the market of a variant around a sale date (the history's primary
-- key serves that) and the seller's own sales and purchases of the same product and size.
-- It serves every lookup by product alone too, so the single-column index goes (one index
-- fewer to keep up on each inventory insert).
CREATE INDEX inventory_product_size_idx ON products.inventory (product_id, size_id);
DROP INDEX products.inventory_product_idx;
