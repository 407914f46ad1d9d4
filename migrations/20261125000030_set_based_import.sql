-- The Notion import, set-based.
--
-- `integration.import_sales` (migration 4) writes one record at a time through the entry
-- table, each in its own subtransaction: correct, but about 0.5 ms a record. The importer now
-- sends the records it checked as one array per column to `integration.import_sales_set`,
-- which writes them the way the entry table's INSERT trigger would, one statement per table:
-- suppliers, sizes and products reused or created, then inventory, listings, orders, the entry
-- rows and the sync log. A record this function does not take (a value the entry table would
-- refuse or rewrite, an order number seen earlier in the batch) comes back as `retry`; the
-- importer sends those through `integration.import_sales`, which gives each its own error.
--
-- Also: `integration.import_sales` no longer lets one record stop the batch. Its sync-log row
-- was written outside the record's exception block, into varchar(100) columns, so a 101-character
-- order number aborted the whole run; the log's values are now cut to fit.

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

-- Printable ASCII, no doubled or outer spaces: what the entry table's cleaning leaves as it is.
-- Plain SQL without a SET clause, so the planner inlines it (no call per row).
CREATE FUNCTION integration.import_plain(p text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT octet_length(p) = length(p)
       AND translate(p, E'\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x7f', '') = p
       AND strpos(p, '  ') = 0
       AND left(p, 1) <> ' ' AND right(p, 1) <> ' '
$$;
REVOKE EXECUTE ON FUNCTION integration.import_plain(text) FROM PUBLIC;

-- The set-based write. Arrays are one per column, element n is record n; `p_warnings` holds
-- each record's validation findings joined by U+001F. Returns one row per record: `created`,
-- `updated`, `skipped` (each with its sync-log row written), or `retry` (nothing written: the
-- caller imports it one at a time).
--
-- SECURITY DEFINER because the entry rows are written with the entry table's refresh key (the
-- INSERT trigger lets them through as they are); what is written is what the trigger would
-- write, from values checked here, so the worker role gains no write it did not have.
CREATE FUNCTION integration.import_sales_set(
    p_idx            integer[],
    p_source         text[],
    p_page           text[],
    p_order          text[],
    p_sku            text[],
    p_size           text[],
    p_region         text[],
    p_supplier       text[],
    p_purchase_price numeric[],
    p_purchase_date  date[],
    p_sale_price     numeric[],
    p_net_proceeds   numeric[],
    p_profit         numeric[],
    p_roi            numeric[],
    p_sold_at        date[],
    p_delivered_at   date[],
    p_notes          text[],
    p_warnings       text[],
    p_update         boolean,
    p_trigger        text,
    p_synced_by      text,
    p_run_id         uuid
) RETURNS TABLE (idx integer, status text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    -- The entry table's rules (integration.fold_spaces, sale_entry_clean), inline so that
    -- they run once per statement rather than once per row.
    v_space  constant text :=
        '[\s\u00a0\u1680\u180e\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]+';
    v_edge   constant text :=
        '^[\s\u00a0\u1680\u180e\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]+|[\s\u00a0\u1680\u180e\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]+$';
    v_hidden constant text :=
        '[\u00a0\u1680\u180e\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]';
    v_control constant text := '[\u0001-\u001f\u007f-\u009f]';
    v_started  timestamptz := clock_timestamp();
    v_category uuid;
    v_rows     integer;
    v_ms       integer;
BEGIN
    DROP TABLE IF EXISTS pg_temp.import_sales_stage;
    -- A value of printable ASCII without doubled or outer spaces is already what the entry
    -- table's cleaning makes of it; only the others go through the (slower) expressions.
    CREATE TEMP TABLE import_sales_stage ON COMMIT DROP AS
    SELECT u.idx, u.source, u.page, u.raw_order,
           CASE WHEN integration.import_plain(u.raw_order) THEN u.raw_order
                ELSE regexp_replace(u.raw_order, v_edge, '', 'g') END AS order_number,
           u.sku AS raw_sku, u.size AS raw_size, u.supplier AS raw_supplier,
           upper(CASE WHEN integration.import_plain(u.sku) THEN u.sku
                      ELSE btrim(regexp_replace(u.sku, v_space, ' ', 'g'), ' ') END) AS sku,
           CASE WHEN integration.import_plain(u.size) THEN u.size
                ELSE btrim(regexp_replace(u.size, v_space, ' ', 'g'), ' ') END AS size,
           upper(coalesce(nullif(CASE WHEN integration.import_plain(u.region) THEN u.region
                                      ELSE btrim(regexp_replace(u.region, v_space, ' ', 'g'), ' ') END,
                                 ''), 'US')) AS size_region,
           CASE WHEN integration.import_plain(u.supplier) THEN u.supplier
                ELSE btrim(regexp_replace(u.supplier, v_space, ' ', 'g'), ' ') END AS supplier,
           u.purchase_price AS raw_purchase_price, u.sale_price AS raw_sale_price,
           u.net_proceeds AS raw_net_proceeds, u.profit AS raw_profit, u.roi AS raw_roi,
           round(u.purchase_price, 2) AS purchase_price, u.purchase_date,
           round(u.sale_price, 2) AS sale_price, round(u.net_proceeds, 2) AS net_proceeds,
           coalesce(round(u.profit, 2), round(round(u.net_proceeds, 2) - round(u.purchase_price, 2), 2))
               AS profit,
           coalesce(round(u.roi, 4), CASE WHEN round(u.purchase_price, 2) > 0 THEN
               round((round(u.net_proceeds, 2) - round(u.purchase_price, 2)) / round(u.purchase_price, 2), 4) END)
               AS roi,
           u.sold_at, u.delivered_at, u.notes,
           coalesce(string_to_array(nullif(u.warnings, ''), E'\x1f'), '{}') AS warnings,
           NULL::text AS status,
           NULL::uuid AS existing_id,
           NULL::uuid AS supplier_id, NULL::uuid AS size_id, NULL::uuid AS product_id,
           NULL::text AS supplier_name, NULL::text AS product_name,
           gen_random_uuid() AS inventory_id, gen_random_uuid() AS listing_id,
           gen_random_uuid() AS order_id
    FROM unnest(p_idx, p_source, p_page, p_order, p_sku, p_size, p_region, p_supplier,
                p_purchase_price, p_purchase_date, p_sale_price, p_net_proceeds, p_profit,
                p_roi, p_sold_at, p_delivered_at, p_notes, p_warnings)
         AS u(idx, source, page, raw_order, sku, size, region, supplier, purchase_price,
              purchase_date, sale_price, net_proceeds, profit, roi, sold_at, delivered_at,
              notes, warnings);
    -- Statistics, so that the joins below are planned for thousands of rows, not a few.
    ANALYZE import_sales_stage;

    -- What the entry table would refuse, or where its reading of the record and the
    -- per-record import's could differ (the order number it looks up, a repeated number):
    -- left to the per-record import, which names the error.
    UPDATE import_sales_stage s SET status = 'retry'
    WHERE NOT coalesce(
            s.order_number <> '' AND length(s.order_number) <= 100
            AND s.order_number !~ v_control AND s.order_number !~ v_hidden
            AND btrim(s.raw_order) = s.order_number
            AND btrim(s.raw_sku, E' \t\r\n') <> '' AND s.sku <> '' AND s.sku !~ v_control
            AND length(s.sku) <= 200
            AND btrim(s.raw_size, E' \t\r\n') <> '' AND s.size <> '' AND s.size !~ v_control
            AND length(s.size) <= 200
            AND btrim(s.raw_supplier, E' \t\r\n') <> '' AND s.supplier <> ''
            AND s.supplier !~ v_control AND length(s.supplier) <= 200
            AND s.raw_purchase_price IS NOT NULL AND s.raw_net_proceeds IS NOT NULL
            AND s.sold_at IS NOT NULL
            AND s.raw_purchase_price <> 'NaN' AND abs(s.purchase_price) < 1e10
            AND s.purchase_price >= 0
            AND abs(s.net_proceeds) < 1e10
            AND (s.raw_sale_price IS NULL
                 OR (s.raw_sale_price <> 'NaN' AND abs(s.sale_price) < 1e10 AND s.sale_price >= 0))
            AND (s.raw_profit IS NULL OR s.raw_profit <> 'NaN')
            AND (s.raw_roi IS NULL OR s.raw_roi <> 'NaN')
            AND abs(s.profit) < 1e10
            AND (s.roi IS NULL OR abs(s.roi) < 1e8)
            AND s.sold_at BETWEEN DATE '1900-01-01' AND DATE '2100-12-31'
            AND (s.purchase_date IS NULL OR s.purchase_date BETWEEN DATE '1900-01-01' AND DATE '2100-12-31')
            AND (s.delivered_at IS NULL OR s.delivered_at BETWEEN DATE '1900-01-01' AND DATE '2100-12-31'),
          false);
    UPDATE import_sales_stage s SET status = 'retry'
    FROM (SELECT t.idx, row_number() OVER (PARTITION BY t.order_number ORDER BY t.idx) AS n
          FROM import_sales_stage t) d
    WHERE d.idx = s.idx AND d.n > 1;

    -- Sales already recorded: skipped, or with p_update their changed fields updated (the
    -- same statements as the per-record import, one per table for the whole batch).
    UPDATE import_sales_stage s SET existing_id = o.id, status = 'skipped'
    FROM platforms.stockx_orders o
    WHERE s.status IS NULL AND o.stockx_order_number = s.order_number;
    IF p_update THEN
        WITH changed AS (
            UPDATE platforms.stockx_orders o SET
                sale_price   = s.raw_sale_price,
                net_proceeds = s.raw_net_proceeds,
                net_profit   = coalesce(s.raw_profit, o.net_profit),
                roi          = coalesce(s.raw_roi, o.roi),
                sold_at      = s.sold_at,
                delivered_at = s.delivered_at
            FROM import_sales_stage s
            WHERE s.status = 'skipped' AND o.id = s.existing_id
              AND (o.sale_price IS DISTINCT FROM s.raw_sale_price
                   OR o.net_proceeds IS DISTINCT FROM s.raw_net_proceeds
                   OR (s.raw_profit IS NOT NULL AND o.net_profit IS DISTINCT FROM s.raw_profit)
                   OR (s.raw_roi IS NOT NULL AND o.roi IS DISTINCT FROM s.raw_roi)
                   OR o.sold_at IS DISTINCT FROM s.sold_at
                   OR o.delivered_at IS DISTINCT FROM s.delivered_at)
            RETURNING s.idx
        )
        UPDATE import_sales_stage s SET status = 'updated' FROM changed c WHERE c.idx = s.idx;
        WITH changed AS (
            UPDATE products.inventory inv SET
                purchase_price = s.raw_purchase_price,
                purchase_date  = s.purchase_date
            FROM import_sales_stage s, platforms.stockx_listings l, platforms.stockx_orders o
            WHERE s.status IN ('skipped', 'updated') AND o.id = s.existing_id
              AND l.id = o.listing_id AND inv.id = l.inventory_id
              AND (inv.purchase_price IS DISTINCT FROM s.raw_purchase_price
                   OR inv.purchase_date IS DISTINCT FROM s.purchase_date)
            RETURNING s.idx
        )
        UPDATE import_sales_stage s SET status = 'updated' FROM changed c WHERE c.idx = s.idx;
    END IF;

    -- New sales: what the entry table's INSERT trigger does for one row, for all of them.
    SELECT id INTO STRICT v_category FROM products.categories WHERE name = 'sneakers';
    PERFORM set_config('stockx_sync.entry_write', 'on', true);
    -- The first spelling of a new supplier in the batch is the one stored.
    INSERT INTO products.suppliers (name)
    SELECT DISTINCT ON (lower(s.supplier)) s.supplier FROM import_sales_stage s
    WHERE s.status IS NULL ORDER BY lower(s.supplier), s.idx
    ON CONFLICT DO NOTHING;
    UPDATE import_sales_stage s SET supplier_id = sup.id, supplier_name = sup.name
    FROM products.suppliers sup
    WHERE s.status IS NULL AND lower(sup.name) = lower(s.supplier);
    INSERT INTO products.sizes (value, region, category_id)
    SELECT DISTINCT s.size, s.size_region, v_category FROM import_sales_stage s
    WHERE s.status IS NULL
    ON CONFLICT DO NOTHING;
    UPDATE import_sales_stage s SET size_id = z.id
    FROM products.sizes z
    WHERE s.status IS NULL AND z.value = s.size AND z.region = s.size_region
      AND z.category_id = v_category;
    INSERT INTO products.products (sku, category_id)
    SELECT DISTINCT s.sku, v_category FROM import_sales_stage s WHERE s.status IS NULL
    ON CONFLICT DO NOTHING;
    UPDATE import_sales_stage s SET product_id = p.id, product_name = p.name
    FROM products.products p
    WHERE s.status IS NULL AND p.sku = s.sku;

    INSERT INTO products.inventory (id, product_id, size_id, supplier_id, purchase_price,
                                    purchase_date, status, external_ids)
    SELECT s.inventory_id, s.product_id, s.size_id, s.supplier_id, s.purchase_price,
           s.purchase_date, 'sold', jsonb_build_object('stockx_order_number', s.order_number)
    FROM import_sales_stage s WHERE s.status IS NULL ORDER BY s.idx;
    INSERT INTO platforms.stockx_listings (id, inventory_id, product_id, ask_price, status)
    SELECT s.listing_id, s.inventory_id, s.product_id, s.sale_price, 'sold'
    FROM import_sales_stage s WHERE s.status IS NULL ORDER BY s.idx;
    INSERT INTO platforms.stockx_orders (id, listing_id, stockx_order_number, sale_price,
                                         net_proceeds, net_profit, roi, sold_at, delivered_at,
                                         notes)
    SELECT s.order_id, s.listing_id, s.order_number, s.sale_price, s.net_proceeds, s.profit,
           s.roi, s.sold_at, s.delivered_at, s.notes
    FROM import_sales_stage s WHERE s.status IS NULL ORDER BY s.idx;
    PERFORM set_config('stockx_sync.entry_write', '', true);

    -- The entry rows as the trigger leaves them: the user's values cleaned, the names as the
    -- reused rows spell them, a new order's feedback.
    PERFORM set_config('stockx_sync.entry_refresh',
                       (SELECT key FROM integration.sale_entry_refresh_key LIMIT 1), true);
    INSERT INTO platforms.stockx_sale_entry
        (stockx_order_number, sku, size, size_region, supplier, purchase_price, purchase_date,
         sale_price, net_proceeds, profit, roi, sold_at, delivered_at, notes, enrichment_status,
         stockx_title, stockx_payout, stockx_payout_currency, open_warnings, checked_at, order_id)
    SELECT s.order_number, s.sku, s.size, s.size_region, s.supplier_name, s.purchase_price,
           s.purchase_date, s.sale_price, s.net_proceeds, s.profit, s.roi, s.sold_at,
           s.delivered_at, s.notes, 'pending', s.product_name, NULL, NULL, NULL, NULL, s.order_id
    FROM import_sales_stage s WHERE s.status IS NULL ORDER BY s.idx;
    PERFORM set_config('stockx_sync.entry_refresh', '', true);
    UPDATE import_sales_stage s SET status = 'created' WHERE s.status IS NULL;

    -- One sync-log row per record taken; the batch's time shared out between them.
    SELECT count(*) INTO v_rows FROM import_sales_stage s WHERE s.status <> 'retry';
    v_ms := (extract(epoch FROM clock_timestamp() - v_started) * 1000 / greatest(v_rows, 1))::integer;
    INSERT INTO integration.notion_sale_sync_log
        (stockx_order_number, notion_page_id, sync_status, trigger_type, entities_created,
         validation_warnings, error_message, sync_duration_ms, synced_by, run_id)
    SELECT left(coalesce(nullif(s.order_number, ''), s.source), 100), left(s.page, 100),
           CASE WHEN s.status = 'skipped' THEN 'skipped'
                WHEN cardinality(s.warnings) > 0 THEN 'warning'
                ELSE 'success' END,
           p_trigger,
           CASE WHEN s.status = 'created' THEN
               jsonb_build_object('order', s.order_id, 'listing', s.listing_id,
                                  'inventory', s.inventory_id, 'product', s.product_id,
                                  'size', s.size_id, 'supplier', s.supplier_id) END,
           s.warnings, NULL, v_ms, left(p_synced_by, 100), p_run_id
    FROM import_sales_stage s WHERE s.status <> 'retry' ORDER BY s.idx;

    RETURN QUERY SELECT s.idx, s.status FROM import_sales_stage s ORDER BY s.idx;
    DROP TABLE pg_temp.import_sales_stage;
END $$;

REVOKE EXECUTE ON FUNCTION integration.import_sales_set(
    integer[], text[], text[], text[], text[], text[], text[], text[], numeric[], date[],
    numeric[], numeric[], numeric[], numeric[], date[], date[], text[], text[], boolean, text,
    text, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION integration.import_sales_set(
    integer[], text[], text[], text[], text[], text[], text[], text[], numeric[], date[],
    numeric[], numeric[], numeric[], numeric[], date[], date[], text[], text[], boolean, text,
    text, uuid) TO stockx_sync_worker;
