-- A computed ROI follows the recorded profit.
--
-- An empty ROI was computed from the prices, (net proceeds - purchase price) / purchase price,
-- even when the user had typed the profit: a sale with only its profit typed then got a
-- `roi_mismatch` (ROI against profit / purchase price) for the ROI the system computed itself.
-- An empty ROI is now round(profit / purchase price, 4) with the profit as recorded (typed, or
-- computed from the prices as before), so the user is warned only about what they typed.
--
-- What changes, each replaced whole (a later CREATE OR REPLACE wins):
--   integration.sale_entry_clean          (migration 10) the entry table's cleaning;
--   platforms.stockx_sale_entry_update    (migration 10) an ROI sent back unchanged counts as
--                                          computed when it is either computation's result
--                                          (rows stored before this migration used the prices);
--                                          and its re-queue of the order names the predicate of
--                                          the one-waiting-job index (migration 20): with
--                                          migration 10's, a change of SKU or size failed with
--                                          "no unique or exclusion constraint matching the ON
--                                          CONFLICT specification".
--   integration.import_sales              (migration 30) on --update, a computed ROI follows a
--                                          changed profit or purchase price;
--   integration.import_sales_set          the same two rules, set-based: in migration 41, which
--                                          replaces it with the COPY-staged load.

-- The ROI computed for a profit: a ratio to the purchase price, to four places (what
-- `roi_mismatch` compares a recorded ROI with). Plain SQL without a SET clause, so the planner
-- inlines them.
CREATE FUNCTION integration.computed_roi(p_profit numeric, p_purchase_price numeric)
RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_purchase_price > 0 THEN round(p_profit / p_purchase_price, 4) END
$$;

-- Whether a stored ROI is one the system computed: from the recorded profit (since this
-- migration) or from the prices (before it).
CREATE FUNCTION integration.roi_was_computed(p_roi numeric, p_profit numeric,
                                             p_net_proceeds numeric, p_purchase_price numeric)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_roi IS NOT DISTINCT FROM integration.computed_roi(p_profit, p_purchase_price)
        OR p_roi IS NOT DISTINCT FROM
           integration.computed_roi(p_net_proceeds - p_purchase_price, p_purchase_price)
$$;
REVOKE EXECUTE ON FUNCTION integration.computed_roi(numeric, numeric) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION integration.roi_was_computed(numeric, numeric, numeric, numeric) FROM PUBLIC;
-- integration.import_sales runs as its caller, the worker.
GRANT EXECUTE ON FUNCTION integration.computed_roi(numeric, numeric) TO stockx_sync_worker;
GRANT EXECUTE ON FUNCTION integration.roi_was_computed(numeric, numeric, numeric, numeric)
    TO stockx_sync_worker;

-- Checks and normalises what the user entered; computes empty profit and ROI.
CREATE OR REPLACE FUNCTION integration.sale_entry_clean(e platforms.stockx_sale_entry)
RETURNS platforms.stockx_sale_entry
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_invisible constant text :=
        '[\s\u00a0\u1680\u180e\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]';
    -- Inside an order number, ordinary spaces are the user's business; these are not.
    v_hidden constant text :=
        '[\u00a0\u1680\u180e\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]';
BEGIN
    e.stockx_order_number := regexp_replace(e.stockx_order_number,
                                            '^' || v_invisible || '+|' || v_invisible || '+$', '', 'g');
    IF nullif(e.stockx_order_number, '') IS NULL THEN
        RAISE EXCEPTION 'stockx_sale_entry: stockx_order_number is required'
            USING ERRCODE = 'not_null_violation', COLUMN = 'stockx_order_number',
                  TABLE = 'stockx_sale_entry', SCHEMA = 'platforms';
    ELSIF length(e.stockx_order_number) > 100 THEN
        RAISE EXCEPTION 'stockx_sale_entry: stockx_order_number is longer than 100 characters (%...)',
                        left(e.stockx_order_number, 20)
            USING ERRCODE = 'string_data_right_truncation', COLUMN = 'stockx_order_number',
                  TABLE = 'stockx_sale_entry', SCHEMA = 'platforms';
    ELSIF e.stockx_order_number ~ '[\u0001-\u001f\u007f-\u009f]'
          OR e.stockx_order_number ~ v_hidden THEN
        RAISE EXCEPTION 'stockx_sale_entry: stockx_order_number contains control or invisible characters (%)',
                        quote_literal(e.stockx_order_number)
            USING ERRCODE = 'check_violation', COLUMN = 'stockx_order_number',
                  TABLE = 'stockx_sale_entry', SCHEMA = 'platforms';
    END IF;

    e.sku := upper(integration.entry_name(e.sku, 'sku', e.stockx_order_number));
    e.size := integration.entry_name(e.size, 'size', e.stockx_order_number);
    e.size_region := upper(coalesce(nullif(integration.fold_spaces(e.size_region), ''), 'US'));
    e.supplier := integration.entry_name(e.supplier, 'supplier', e.stockx_order_number);

    IF e.purchase_price IS NULL THEN
        RAISE EXCEPTION 'stockx_sale_entry: purchase_price is required (order %)', e.stockx_order_number
            USING ERRCODE = 'not_null_violation', COLUMN = 'purchase_price',
                  TABLE = 'stockx_sale_entry', SCHEMA = 'platforms';
    ELSIF e.net_proceeds IS NULL THEN
        RAISE EXCEPTION 'stockx_sale_entry: net_proceeds is required (order %)', e.stockx_order_number
            USING ERRCODE = 'not_null_violation', COLUMN = 'net_proceeds',
                  TABLE = 'stockx_sale_entry', SCHEMA = 'platforms';
    ELSIF e.sold_at IS NULL THEN
        RAISE EXCEPTION 'stockx_sale_entry: sold_at is required (order %)', e.stockx_order_number
            USING ERRCODE = 'not_null_violation', COLUMN = 'sold_at',
                  TABLE = 'stockx_sale_entry', SCHEMA = 'platforms';
    END IF;

    e.purchase_price := integration.entry_amount(e.purchase_price, 'purchase_price', 2, 1e10);
    e.sale_price := integration.entry_amount(e.sale_price, 'sale_price', 2, 1e10);
    e.net_proceeds := integration.entry_amount(e.net_proceeds, 'net_proceeds', 2, 1e10);
    e.profit := integration.entry_amount(e.profit, 'profit', 2, 1e10);
    e.roi := integration.entry_amount(e.roi, 'roi', 4, 1e8);
    IF e.purchase_price < 0 THEN
        RAISE EXCEPTION 'stockx_sale_entry: purchase_price must not be negative (order %)', e.stockx_order_number
            USING ERRCODE = 'check_violation', COLUMN = 'purchase_price',
                  TABLE = 'stockx_sale_entry', SCHEMA = 'platforms';
    ELSIF e.sale_price < 0 THEN
        RAISE EXCEPTION 'stockx_sale_entry: sale_price must not be negative (order %)', e.stockx_order_number
            USING ERRCODE = 'check_violation', COLUMN = 'sale_price',
                  TABLE = 'stockx_sale_entry', SCHEMA = 'platforms';
    END IF;
    e.purchase_date := integration.entry_date(e.purchase_date, 'purchase_date');
    e.sold_at := integration.entry_date(e.sold_at, 'sold_at');
    e.delivered_at := integration.entry_date(e.delivered_at, 'delivered_at');

    -- Given profit/ROI are stored as given (validation compares them later); an empty profit
    -- is computed from the prices, an empty ROI from the profit as recorded.
    e.profit := coalesce(e.profit, round(e.net_proceeds - e.purchase_price, 2));
    e.roi := coalesce(e.roi, integration.computed_roi(e.profit, e.purchase_price));
    RETURN e;
END $$;

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

-- AFTER DELETE: the row is gone by then, so removing its order does not run into the row's

CREATE OR REPLACE FUNCTION integration.import_sales(
    p_records   jsonb,
    p_update    boolean,
    p_trigger   text,
    p_synced_by text,
    p_run_id    uuid
) RETURNS TABLE (idx integer, status text, error text, entities jsonb)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r          jsonb;
    i          integer := 0;
    v_started  timestamptz;
    v_order    text;
    v_existing uuid;
    v_status   text;
    v_error    text;
    v_entities jsonb;
    v_warnings text[];
    v_changed  integer;
    v_inv_changed integer;
BEGIN
    FOR r IN SELECT * FROM jsonb_array_elements(p_records) LOOP
        i := i + 1;
        v_started := clock_timestamp();
        v_order := btrim(r->>'stockx_order_number');
        v_error := NULL;
        v_entities := NULL;
        v_existing := NULL;
        v_warnings := ARRAY(SELECT jsonb_array_elements_text(coalesce(r->'warnings', '[]'::jsonb)));
        BEGIN
            SELECT o.id INTO v_existing FROM platforms.stockx_orders o
            WHERE o.stockx_order_number = v_order;
            IF v_existing IS NULL THEN
                INSERT INTO platforms.stockx_sale_entry
                    (stockx_order_number, sku, size, size_region, supplier, purchase_price,
                     purchase_date, sale_price, net_proceeds, profit, roi, sold_at, delivered_at, notes)
                VALUES (v_order, r->>'sku', r->>'size', r->>'size_region', r->>'supplier',
                        (r->>'purchase_price')::numeric, (r->>'purchase_date')::date,
                        (r->>'sale_price')::numeric, (r->>'net_proceeds')::numeric,
                        (r->>'profit')::numeric, (r->>'roi')::numeric, (r->>'sold_at')::date,
                        (r->>'delivered_at')::date, r->>'notes');
                SELECT jsonb_build_object('order', o.id, 'listing', l.id, 'inventory', inv.id,
                                          'product', inv.product_id, 'size', inv.size_id,
                                          'supplier', inv.supplier_id)
                INTO v_entities
                FROM platforms.stockx_orders o
                JOIN platforms.stockx_listings l ON l.id = o.listing_id
                JOIN products.inventory inv ON inv.id = l.inventory_id
                WHERE o.stockx_order_number = v_order;
                v_status := 'created';
            ELSIF NOT p_update THEN
                v_status := 'skipped';
            ELSE
                -- Only what differs is written, so an unchanged record stays "skipped" and
                -- touches nothing (no trigger, no job).
                -- An ROI the record leaves empty that was the computed one follows the
                -- record's profit and purchase price.
                UPDATE platforms.stockx_orders o SET
                    sale_price   = (r->>'sale_price')::numeric,
                    net_proceeds = (r->>'net_proceeds')::numeric,
                    net_profit   = coalesce((r->>'profit')::numeric, o.net_profit),
                    roi          = coalesce((r->>'roi')::numeric, f.roi),
                    sold_at      = (r->>'sold_at')::date,
                    delivered_at = (r->>'delivered_at')::date
                FROM (SELECT CASE WHEN integration.roi_was_computed(o2.roi, o2.net_profit,
                                                                    o2.net_proceeds, i2.purchase_price)
                                  THEN integration.computed_roi(
                                           coalesce(round((r->>'profit')::numeric, 2), o2.net_profit),
                                           round((r->>'purchase_price')::numeric, 2))
                                  ELSE o2.roi END AS roi
                      FROM platforms.stockx_orders o2
                      JOIN platforms.stockx_listings l2 ON l2.id = o2.listing_id
                      JOIN products.inventory i2 ON i2.id = l2.inventory_id
                      WHERE o2.id = v_existing) f
                WHERE o.id = v_existing
                  AND (o.sale_price IS DISTINCT FROM (r->>'sale_price')::numeric
                       OR o.roi IS DISTINCT FROM coalesce((r->>'roi')::numeric, f.roi)
                       OR o.net_proceeds IS DISTINCT FROM (r->>'net_proceeds')::numeric
                       OR ((r->>'profit') IS NOT NULL AND o.net_profit IS DISTINCT FROM (r->>'profit')::numeric)
                       OR ((r->>'roi') IS NOT NULL AND o.roi IS DISTINCT FROM (r->>'roi')::numeric)
                       OR o.sold_at IS DISTINCT FROM (r->>'sold_at')::date
                       OR o.delivered_at IS DISTINCT FROM (r->>'delivered_at')::date);
                GET DIAGNOSTICS v_changed = ROW_COUNT;
                UPDATE products.inventory inv SET
                    purchase_price = (r->>'purchase_price')::numeric,
                    purchase_date  = (r->>'purchase_date')::date
                FROM platforms.stockx_listings l, platforms.stockx_orders o
                WHERE o.id = v_existing AND l.id = o.listing_id AND inv.id = l.inventory_id
                  AND (inv.purchase_price IS DISTINCT FROM (r->>'purchase_price')::numeric
                       OR inv.purchase_date IS DISTINCT FROM (r->>'purchase_date')::date);
                GET DIAGNOSTICS v_inv_changed = ROW_COUNT;
                v_changed := v_changed + v_inv_changed;
                v_status := CASE WHEN v_changed > 0 THEN 'updated' ELSE 'skipped' END;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            v_status := 'failed';
            v_error := SQLERRM;
        END;
        -- Cut to the log's column widths: an over-long order number is the record's error,
        -- never the run's.
        INSERT INTO integration.notion_sale_sync_log
            (stockx_order_number, notion_page_id, sync_status, trigger_type, entities_created,
             validation_warnings, error_message, sync_duration_ms, synced_by, run_id)
        VALUES (left(coalesce(nullif(v_order, ''), r->>'source'), 100),
                left(r->>'notion_page_id', 100),
                CASE v_status
                    WHEN 'failed' THEN 'failed'
                    WHEN 'skipped' THEN 'skipped'
                    ELSE CASE WHEN cardinality(v_warnings) > 0 THEN 'warning' ELSE 'success' END
                END,
                p_trigger, v_entities, v_warnings, v_error,
                (extract(epoch FROM clock_timestamp() - v_started) * 1000)::integer,
                left(p_synced_by, 100), p_run_id);
        idx := i;
        status := v_status;
        error := v_error;
        entities := v_entities;
        RETURN NEXT;
    END LOOP;
END $$;
