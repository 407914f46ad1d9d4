-- The Notion backfill's write path: the entry view, a batch at a time.
--
-- `integration.import_sales(records, ...)` takes a JSON array of sales (as the importer mapped
-- them) and writes each one through `platforms.stockx_sale_entry`, the same path as Budibase,
-- inside its own subtransaction: a bad record is rolled back alone, reported, logged, and the
-- rest go on. One call per batch keeps a 10,000-row import to a few dozen round trips.
-- Idempotent on the order number: a sale already recorded is skipped, or with `p_update`, its
-- changed fields are updated. Every record gets a row in `integration.notion_sale_sync_log`.

-- Where each source's incremental reads stopped (the largest last_edited_time seen).
CREATE TABLE integration.notion_sync_state (
    source        text PRIMARY KEY,
    watermark     timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION integration.import_sales(
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
                UPDATE platforms.stockx_orders o SET
                    sale_price   = (r->>'sale_price')::numeric,
                    net_proceeds = (r->>'net_proceeds')::numeric,
                    net_profit   = coalesce((r->>'profit')::numeric, o.net_profit),
                    roi          = coalesce((r->>'roi')::numeric, o.roi),
                    sold_at      = (r->>'sold_at')::date,
                    delivered_at = (r->>'delivered_at')::date
                WHERE o.id = v_existing
                  AND (o.sale_price IS DISTINCT FROM (r->>'sale_price')::numeric
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
        INSERT INTO integration.notion_sale_sync_log
            (stockx_order_number, notion_page_id, sync_status, trigger_type, entities_created,
             validation_warnings, error_message, sync_duration_ms, synced_by, run_id)
        VALUES (coalesce(nullif(v_order, ''), r->>'source'), r->>'notion_page_id',
                CASE v_status
                    WHEN 'failed' THEN 'failed'
                    WHEN 'skipped' THEN 'skipped'
                    ELSE CASE WHEN cardinality(v_warnings) > 0 THEN 'warning' ELSE 'success' END
                END,
                p_trigger, v_entities, v_warnings, v_error,
                (extract(epoch FROM clock_timestamp() - v_started) * 1000)::integer,
                p_synced_by, p_run_id);
        idx := i;
        status := v_status;
        error := v_error;
        entities := v_entities;
        RETURN NEXT;
    END LOOP;
END $$;

GRANT SELECT, INSERT, UPDATE ON integration.notion_sync_state TO stockx_sync_worker;
GRANT SELECT ON integration.notion_sync_state TO stockx_sync_reader;
GRANT EXECUTE ON FUNCTION integration.import_sales(jsonb, boolean, text, text, uuid)
    TO stockx_sync_worker;
