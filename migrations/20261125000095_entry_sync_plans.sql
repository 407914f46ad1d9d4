-- The entry row's refresh (integration.sale_entry_sync), which every enrichment write calls
-- through the follow triggers, cost more with every sale recorded.
--
-- * integration.sale_entry_source is a PL/pgSQL set-returning function, so the planner took it
--   for 1,000 rows and joined its answer to platforms.stockx_sale_entry by hashing the whole
--   table: each refresh read every sale (6 ms of server time per refresh at 3,000 sales, most
--   of a backfill's enrichment time, growing with the table). It is called with the orders of
--   one statement, nearly always one or two: planned as one row, the refresh probes the entry
--   table's order_id index.
-- * The refresh ran the source query twice, the second time only to create entry rows that
--   were missing, which they never are but for an order written straight into
--   platforms.stockx_orders. It now looks for a missing row by index first.
-- * products.inventory's follow trigger fired on every update, among them the worker's
--   stockx_variant_id, which the entry row does not show: now only when a column it shows
--   changes.
ALTER FUNCTION integration.sale_entry_source(uuid[]) ROWS 1;

CREATE OR REPLACE FUNCTION integration.sale_entry_sync(p_order_ids uuid[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF cardinality(p_order_ids) IS NULL OR cardinality(p_order_ids) = 0 THEN
        RETURN;
    END IF;
    -- Two transactions refreshing the same row (the worker's order and inventory jobs run at
    -- once) must not overwrite each other with what each saw: the row lock makes the second
    -- wait, and its next statement reads with a snapshot that includes the first's commit.
    PERFORM 1 FROM platforms.stockx_sale_entry WHERE order_id = ANY (p_order_ids)
        ORDER BY id FOR UPDATE;
    PERFORM set_config('stockx_sync.entry_refresh',
                       (SELECT key FROM integration.sale_entry_refresh_key LIMIT 1), true);
    UPDATE platforms.stockx_sale_entry e SET
        stockx_order_number = s.stockx_order_number, sku = s.sku, size = s.size,
        size_region = s.size_region, supplier = s.supplier, purchase_price = s.purchase_price,
        purchase_date = s.purchase_date, sale_price = s.sale_price,
        net_proceeds = s.net_proceeds, profit = s.profit, roi = s.roi, sold_at = s.sold_at,
        delivered_at = s.delivered_at, notes = s.notes, enrichment_status = s.enrichment_status,
        stockx_title = s.stockx_title, stockx_payout = s.stockx_payout,
        stockx_payout_currency = s.stockx_payout_currency, open_warnings = s.open_warnings,
        checked_at = s.checked_at
    FROM integration.sale_entry_source(p_order_ids) s
    WHERE e.order_id = s.order_id
      AND (e.stockx_order_number, e.sku, e.size, e.size_region, e.supplier, e.purchase_price,
           e.purchase_date, e.sale_price, e.net_proceeds, e.profit, e.roi, e.sold_at,
           e.delivered_at, e.notes, e.enrichment_status, e.stockx_title, e.stockx_payout,
           e.stockx_payout_currency, e.open_warnings, e.checked_at)
          IS DISTINCT FROM
          (s.stockx_order_number, s.sku, s.size, s.size_region, s.supplier, s.purchase_price,
           s.purchase_date, s.sale_price, s.net_proceeds, s.profit, s.roi, s.sold_at,
           s.delivered_at, s.notes, s.enrichment_status, s.stockx_title, s.stockx_payout,
           s.stockx_payout_currency, s.open_warnings, s.checked_at);
    -- An order written straight into platforms.stockx_orders gets its entry row too.
    IF EXISTS (SELECT 1 FROM unnest(p_order_ids) AS o(id)
               WHERE NOT EXISTS (SELECT 1 FROM platforms.stockx_sale_entry e
                                 WHERE e.order_id = o.id)) THEN
        INSERT INTO platforms.stockx_sale_entry
            (stockx_order_number, sku, size, size_region, supplier, purchase_price,
             purchase_date, sale_price, net_proceeds, profit, roi, sold_at, delivered_at, notes,
             enrichment_status, stockx_title, stockx_payout, stockx_payout_currency,
             open_warnings, checked_at, order_id)
        SELECT s.stockx_order_number, s.sku, s.size, s.size_region, s.supplier,
               s.purchase_price, s.purchase_date, s.sale_price, s.net_proceeds, s.profit,
               s.roi, s.sold_at, s.delivered_at, s.notes, s.enrichment_status, s.stockx_title,
               s.stockx_payout, s.stockx_payout_currency, s.open_warnings, s.checked_at,
               s.order_id
        FROM integration.sale_entry_source(p_order_ids) s
        WHERE NOT EXISTS (SELECT 1 FROM platforms.stockx_sale_entry e
                          WHERE e.order_id = s.order_id)
        ON CONFLICT DO NOTHING;
    END IF;
    PERFORM set_config('stockx_sync.entry_refresh', '', true);
END $$;

DROP TRIGGER inventory_follow ON products.inventory;
CREATE TRIGGER inventory_follow AFTER UPDATE ON products.inventory
    FOR EACH ROW
    WHEN ((OLD.product_id, OLD.size_id, OLD.supplier_id, OLD.purchase_price, OLD.purchase_date)
          IS DISTINCT FROM
          (NEW.product_id, NEW.size_id, NEW.supplier_id, NEW.purchase_price, NEW.purchase_date))
    EXECUTE FUNCTION integration.sale_entry_follow();
