-- A correction of a sale's SKU or size through the entry table (Budibase's UPDATE, or an
-- import that rewrites the row) failed with "there is no unique or exclusion constraint
-- matching the ON CONFLICT specification": the update trigger re-queues the order job with
-- ON CONFLICT over the one-open-job index, which migration 020 replaced by the one-waiting-job
-- index (`state IN ('available', 'retryable')`). The function again, as migration 040 has it,
-- with the predicate of the index that exists. The order job has to run after such a
-- correction: its checks (`order_product_mismatch`) compare StockX's order with the product
-- and size.

CREATE OR REPLACE FUNCTION platforms.stockx_sale_entry_update() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_ids     record;
    v_old     record;
    v_changed boolean;
BEGIN
    IF TG_RELID <> 'platforms.stockx_sale_entry'::regclass OR TG_OP <> 'UPDATE'
       OR TG_WHEN <> 'BEFORE' OR TG_LEVEL <> 'ROW' THEN
        RAISE EXCEPTION 'platforms.stockx_sale_entry_update() runs only as the BEFORE UPDATE trigger of platforms.stockx_sale_entry'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF integration.sale_entry_refreshing() THEN
        RETURN NEW;
    END IF;
    IF NEW.id IS DISTINCT FROM OLD.id THEN
        RAISE EXCEPTION 'stockx_sale_entry: id cannot be changed (% to %)', OLD.id, NEW.id
            USING ERRCODE = 'generated_always', COLUMN = 'id',
                  TABLE = 'stockx_sale_entry', SCHEMA = 'platforms';
    END IF;
    -- The worker's columns are the worker's: whatever the client sent, they are recomputed.
    NEW.order_id := OLD.order_id;

    -- A profit sent back unchanged that was the computed one follows the new prices, an ROI
    -- the new profit; one the user typed stays as typed.
    IF NEW.profit IS NOT DISTINCT FROM OLD.profit
       AND OLD.profit IS NOT DISTINCT FROM round(OLD.net_proceeds - OLD.purchase_price, 2) THEN
        NEW.profit := NULL;
    END IF;
    IF NEW.roi IS NOT DISTINCT FROM OLD.roi
       AND integration.roi_was_computed(OLD.roi, OLD.profit, OLD.net_proceeds,
                                        OLD.purchase_price) THEN
        NEW.roi := NULL;
    END IF;
    NEW := integration.sale_entry_clean(NEW);

    IF NEW.stockx_order_number <> OLD.stockx_order_number AND EXISTS (
        SELECT 1 FROM platforms.stockx_orders
        WHERE stockx_order_number = NEW.stockx_order_number AND id <> OLD.order_id) THEN
        RAISE EXCEPTION 'StockX order % is already recorded', NEW.stockx_order_number
            USING ERRCODE = 'unique_violation', COLUMN = 'stockx_order_number',
                  CONSTRAINT = 'stockx_orders_order_number_key',
                  TABLE = 'stockx_sale_entry', SCHEMA = 'platforms',
                  HINT = 'Each StockX order number can be entered once.';
    END IF;

    SELECT o.id AS order_id, l.id AS listing_id, i.id AS inventory_id, i.product_id, i.size_id,
           i.supplier_id
    INTO v_old
    FROM platforms.stockx_orders o
    JOIN platforms.stockx_listings l ON l.id = o.listing_id
    JOIN products.inventory i ON i.id = l.inventory_id
    WHERE o.id = OLD.order_id
    FOR UPDATE OF o, l, i;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'stockx_sale_entry: the sale % has no order any more', OLD.stockx_order_number
            USING ERRCODE = 'foreign_key_violation', COLUMN = 'order_id',
                  TABLE = 'stockx_sale_entry', SCHEMA = 'platforms';
    END IF;

    PERFORM set_config('stockx_sync.entry_write', 'on', true);
    SELECT * INTO STRICT v_ids FROM integration.sale_entry_lookups(NEW);

    UPDATE products.inventory SET
        product_id = v_ids.product_id, size_id = v_ids.size_id, supplier_id = v_ids.supplier_id,
        purchase_price = NEW.purchase_price, purchase_date = NEW.purchase_date,
        external_ids = external_ids || jsonb_build_object('stockx_order_number', NEW.stockx_order_number),
        -- A StockX variant belongs to a product and size.
        stockx_variant_id = CASE WHEN (product_id, size_id) = (v_ids.product_id, v_ids.size_id)
                                 THEN stockx_variant_id END
    WHERE id = v_old.inventory_id
      AND (product_id, size_id, supplier_id, purchase_price, purchase_date,
           external_ids->>'stockx_order_number')
          IS DISTINCT FROM
          (v_ids.product_id, v_ids.size_id, v_ids.supplier_id, NEW.purchase_price,
           NEW.purchase_date, NEW.stockx_order_number);

    UPDATE platforms.stockx_listings SET product_id = v_ids.product_id, ask_price = NEW.sale_price
    WHERE id = v_old.listing_id
      AND (product_id, ask_price) IS DISTINCT FROM (v_ids.product_id, NEW.sale_price);

    UPDATE platforms.stockx_orders SET
        stockx_order_number = NEW.stockx_order_number, sale_price = NEW.sale_price,
        net_proceeds = NEW.net_proceeds, net_profit = NEW.profit, roi = NEW.roi,
        sold_at = NEW.sold_at, delivered_at = NEW.delivered_at, notes = NEW.notes
    WHERE id = v_old.order_id
      AND (stockx_order_number, sale_price, net_proceeds, net_profit, roi, sold_at, delivered_at,
           notes)
          IS DISTINCT FROM
          (NEW.stockx_order_number, NEW.sale_price, NEW.net_proceeds, NEW.profit, NEW.roi,
           NEW.sold_at, NEW.delivered_at, NEW.notes);

    IF NEW.stockx_order_number <> OLD.stockx_order_number THEN
        UPDATE integration.validation_warnings SET stockx_order_number = NEW.stockx_order_number
        WHERE (entity_type = 'order' AND entity_id = v_old.order_id)
           OR (entity_type = 'inventory' AND entity_id = v_old.inventory_id);
    END IF;

    -- The order's checks compare it with the product and size too: a new product or size
    -- re-queues the order as well as the inventory item.
    IF (v_old.product_id, v_old.size_id) IS DISTINCT FROM (v_ids.product_id, v_ids.size_id) THEN
        INSERT INTO integration.enrichment_jobs (kind, entity_id)
        VALUES ('order', v_old.order_id)
        ON CONFLICT (kind, entity_id) WHERE state IN ('available', 'retryable')
        DO NOTHING;
        IF coalesce(current_setting('stockx_sync.skip_notify', true), '') <> 'on' THEN
            PERFORM pg_notify('stockx_sync_jobs', 'order');
        END IF;
    END IF;

    NEW := integration.sale_entry_fill(NEW);
    v_changed := (NEW.stockx_order_number, NEW.sku, NEW.size, NEW.size_region, NEW.supplier,
                  NEW.purchase_price, NEW.purchase_date, NEW.sale_price, NEW.net_proceeds,
                  NEW.profit, NEW.roi, NEW.sold_at, NEW.delivered_at, NEW.notes)
                 IS DISTINCT FROM
                 (OLD.stockx_order_number, OLD.sku, OLD.size, OLD.size_region, OLD.supplier,
                  OLD.purchase_price, OLD.purchase_date, OLD.sale_price, OLD.net_proceeds,
                  OLD.profit, OLD.roi, OLD.sold_at, OLD.delivered_at, OLD.notes);
    IF v_changed THEN
        INSERT INTO integration.sale_entry_audit
            (action, entry_id, order_id, stockx_order_number, row_before, row_after)
        VALUES ('update', OLD.id, OLD.order_id, OLD.stockx_order_number, to_jsonb(OLD), to_jsonb(NEW));
    END IF;
    PERFORM set_config('stockx_sync.entry_write', '', true);
    RETURN NEW;
END $$;
