-- The Notion import at COPY speed.
--
-- Where the time went (10,000 generated rows, 8,788 StockX sales, one call of
-- `integration.import_sales_set`, auto_explain with nested statements): every new sale still
-- cost per-row work beside the set-based statements: the entry table's BEFORE INSERT trigger
-- (a PL/pgSQL SECURITY DEFINER call per row, plus `sale_entry_refreshing()` and its query, only
-- to let the import's rows through), the foreign-key checks (seven per sale, unavoidable),
-- and the records travelled as 18 bound arrays, unnested into a staging table per batch of
-- 2,000. This migration:
--
--   * loads through COPY: `integration.import_stage_open()` creates the session's load table
--     (`pg_temp.import_sales_load`, dropped at commit) and lets the worker COPY into it;
--     `integration.import_sales_staged(...)` does what `import_sales_set` did, from that
--     table. `import_sales_set` (arrays) stays, as a wrapper over the two;
--   * the entry table's INSERT trigger no longer runs per row for the import's (and the sync's)
--     rows: its WHEN clause skips it while `stockx_sync.entry_refresh` is set, and a
--     statement-level trigger refuses the whole statement unless the setting holds the secret
--     (integration.sale_entry_refresh_key), so setting it by hand still lets nothing through.

-- The load table of this session's import, with the columns the importer sends. Created by
-- the function's owner (so that import_sales_staged, SECURITY DEFINER, reads it) and open to
-- the worker's COPY.
CREATE FUNCTION integration.import_stage_open() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DROP TABLE IF EXISTS pg_temp.import_sales_load;
    CREATE TEMP TABLE import_sales_load (
        idx            integer NOT NULL,
        source         text,
        page           text,
        raw_order      text,
        sku            text,
        size           text,
        region         text,
        supplier       text,
        purchase_price numeric,
        purchase_date  date,
        sale_price     numeric,
        net_proceeds   numeric,
        profit         numeric,
        roi            numeric,
        sold_at        date,
        delivered_at   date,
        notes          text,
        -- The record's validation findings joined by U+001F.
        warnings       text
    ) ON COMMIT DROP;
    GRANT INSERT ON pg_temp.import_sales_load TO stockx_sync_worker;
END $$;
REVOKE EXECUTE ON FUNCTION integration.import_stage_open() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION integration.import_stage_open() TO stockx_sync_worker;

-- The set-based write of the records in pg_temp.import_sales_load (idx: 1..n). Returns one row
-- per record: `created`, `updated`, `skipped` (each with its sync-log row written), or `retry`
-- (nothing written: the caller imports it one at a time).
--
-- SECURITY DEFINER because the entry rows are written with the entry table's refresh key (the
-- INSERT trigger lets them through as they are); what is written is what the trigger would
-- write, from values checked here, so the worker role gains no write it did not have.
CREATE FUNCTION integration.import_sales_staged(
    p_update    boolean,
    p_trigger   text,
    p_synced_by text,
    p_run_id    uuid
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
    -- Printable ASCII words with single spaces between them: what the entry table's cleaning
    -- leaves as it is (migration 30's import_plain, as one regular expression: a seventh of
    -- its time on 10,000 records).
    v_plain   constant text := '^[!-~]+( [!-~]+)*$';
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
           CASE WHEN u.raw_order ~ v_plain THEN u.raw_order
                ELSE regexp_replace(u.raw_order, v_edge, '', 'g') END AS order_number,
           u.sku AS raw_sku, u.size AS raw_size, u.supplier AS raw_supplier,
           upper(CASE WHEN u.sku ~ v_plain THEN u.sku
                      ELSE btrim(regexp_replace(u.sku, v_space, ' ', 'g'), ' ') END) AS sku,
           CASE WHEN u.size ~ v_plain THEN u.size
                ELSE btrim(regexp_replace(u.size, v_space, ' ', 'g'), ' ') END AS size,
           upper(coalesce(nullif(CASE WHEN u.region ~ v_plain THEN u.region
                                      ELSE btrim(regexp_replace(u.region, v_space, ' ', 'g'), ' ') END,
                                 ''), 'US')) AS size_region,
           CASE WHEN u.supplier ~ v_plain THEN u.supplier
                ELSE btrim(regexp_replace(u.supplier, v_space, ' ', 'g'), ' ') END AS supplier,
           u.purchase_price AS raw_purchase_price, u.sale_price AS raw_sale_price,
           u.net_proceeds AS raw_net_proceeds, u.profit AS raw_profit, u.roi AS raw_roi,
           round(u.purchase_price, 2) AS purchase_price, u.purchase_date,
           round(u.sale_price, 2) AS sale_price, round(u.net_proceeds, 2) AS net_proceeds,
           coalesce(round(u.profit, 2), round(round(u.net_proceeds, 2) - round(u.purchase_price, 2), 2))
               AS profit,
           coalesce(round(u.roi, 4), integration.computed_roi(
               coalesce(round(u.profit, 2), round(round(u.net_proceeds, 2) - round(u.purchase_price, 2), 2)),
               round(u.purchase_price, 2))) AS roi,
           u.sold_at, u.delivered_at, u.notes,
           coalesce(string_to_array(nullif(u.warnings, ''), E'\x1f'), '{}') AS warnings,
           NULL::text AS status,
           NULL::uuid AS existing_id,
           NULL::uuid AS supplier_id, NULL::uuid AS size_id, NULL::uuid AS product_id,
           NULL::text AS supplier_name, NULL::text AS product_name,
           gen_random_uuid() AS inventory_id, gen_random_uuid() AS listing_id,
           gen_random_uuid() AS order_id
    FROM pg_temp.import_sales_load u;
    DROP TABLE pg_temp.import_sales_load;
    -- Statistics, so that the joins below are planned for thousands of rows, not a few.
    ANALYZE import_sales_stage (idx, order_number);

    -- What the entry table would refuse, or where its reading of the record and the
    -- per-record import's could differ (the order number it looks up, a repeated number):
    -- left to the per-record import, which names the error.
    -- One pass over the stage: each pass rewrites every row of it.
    UPDATE import_sales_stage s SET status = 'retry'
    FROM (SELECT t.idx, row_number() OVER (PARTITION BY t.order_number ORDER BY t.idx) AS n
          FROM import_sales_stage t) d
    WHERE d.idx = s.idx AND (d.n > 1 OR NOT coalesce(
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
          false));

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
                roi          = coalesce(s.raw_roi, f.roi),
                sold_at      = s.sold_at,
                delivered_at = s.delivered_at
            FROM import_sales_stage s
            -- An ROI the record leaves empty that was the computed one follows the record's
            -- profit and purchase price.
            JOIN LATERAL (
                SELECT CASE WHEN integration.roi_was_computed(o2.roi, o2.net_profit,
                                                              o2.net_proceeds, i2.purchase_price)
                            THEN integration.computed_roi(coalesce(round(s.raw_profit, 2), o2.net_profit),
                                                          s.purchase_price)
                            ELSE o2.roi END AS roi
                FROM platforms.stockx_orders o2
                JOIN platforms.stockx_listings l2 ON l2.id = o2.listing_id
                JOIN products.inventory i2 ON i2.id = l2.inventory_id
                WHERE o2.id = s.existing_id) f ON true
            WHERE s.status = 'skipped' AND o.id = s.existing_id
              AND (o.sale_price IS DISTINCT FROM s.raw_sale_price
                   OR o.roi IS DISTINCT FROM coalesce(s.raw_roi, f.roi)
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
    INSERT INTO products.sizes (value, region, category_id)
    SELECT DISTINCT s.size, s.size_region, v_category FROM import_sales_stage s
    WHERE s.status IS NULL
    ON CONFLICT DO NOTHING;
    INSERT INTO products.products (sku, category_id)
    SELECT DISTINCT s.sku, v_category FROM import_sales_stage s WHERE s.status IS NULL
    ON CONFLICT DO NOTHING;
    -- The three lookups in one pass.
    UPDATE import_sales_stage s SET supplier_id = sup.id, supplier_name = sup.name,
                                    size_id = z.id, product_id = p.id, product_name = p.name
    FROM products.suppliers sup, products.sizes z, products.products p
    WHERE s.status IS NULL AND lower(sup.name) = lower(s.supplier)
      AND z.value = s.size AND z.region = s.size_region AND z.category_id = v_category
      AND p.sku = s.sku;

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
    -- From here on a status still NULL means created (not written back: another pass).

    -- One sync-log row per record taken; the batch's time shared out between them.
    SELECT count(*) INTO v_rows FROM import_sales_stage s
    WHERE s.status IS DISTINCT FROM 'retry';
    v_ms := (extract(epoch FROM clock_timestamp() - v_started) * 1000 / greatest(v_rows, 1))::integer;
    INSERT INTO integration.notion_sale_sync_log
        (stockx_order_number, notion_page_id, sync_status, trigger_type, entities_created,
         validation_warnings, error_message, sync_duration_ms, synced_by, run_id)
    SELECT left(coalesce(nullif(s.order_number, ''), s.source), 100), left(s.page, 100),
           CASE WHEN s.status = 'skipped' THEN 'skipped'
                WHEN cardinality(s.warnings) > 0 THEN 'warning'
                ELSE 'success' END,
           p_trigger,
           CASE WHEN s.status IS NULL THEN
               jsonb_build_object('order', s.order_id, 'listing', s.listing_id,
                                  'inventory', s.inventory_id, 'product', s.product_id,
                                  'size', s.size_id, 'supplier', s.supplier_id) END,
           s.warnings, NULL, v_ms, left(p_synced_by, 100), p_run_id
    FROM import_sales_stage s WHERE s.status IS DISTINCT FROM 'retry' ORDER BY s.idx;

    RETURN QUERY SELECT s.idx, coalesce(s.status, 'created') FROM import_sales_stage s
                 ORDER BY s.idx;
    DROP TABLE pg_temp.import_sales_stage;
END $$;
REVOKE EXECUTE ON FUNCTION integration.import_sales_staged(boolean, text, text, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION integration.import_sales_staged(boolean, text, text, uuid)
    TO stockx_sync_worker;

-- Migration 30's array form of the load and its plain-value test: nothing calls them now that
-- the records arrive by COPY.
DROP FUNCTION integration.import_sales_set(integer[], text[], text[], text[], text[], text[],
    text[], text[], numeric[], date[], numeric[], numeric[], numeric[], numeric[], date[],
    date[], text[], text[], boolean, text, text, uuid);
DROP FUNCTION integration.import_plain(text);

-- The entry table's INSERT trigger: not called per row while the sync (or the import) writes
-- rows with the refresh key; a statement that sets the key without knowing it is refused
-- whole, after its rows (which skipped the trigger) were written, so it leaves nothing.
CREATE FUNCTION integration.sale_entry_refresh_guard() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_RELID <> 'platforms.stockx_sale_entry'::regclass OR TG_LEVEL <> 'STATEMENT'
       OR TG_WHEN <> 'AFTER' THEN
        RAISE EXCEPTION 'integration.sale_entry_refresh_guard() runs only as a statement trigger of platforms.stockx_sale_entry'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT integration.sale_entry_refreshing() THEN
        RAISE EXCEPTION 'stockx_sale_entry: the setting stockx_sync.entry_refresh is reserved for stockx-sync; clear it to write sales'
            USING ERRCODE = 'insufficient_privilege', TABLE = 'stockx_sale_entry',
                  SCHEMA = 'platforms';
    END IF;
    RETURN NULL;
END $$;
REVOKE EXECUTE ON FUNCTION integration.sale_entry_refresh_guard() FROM PUBLIC;

DROP TRIGGER stockx_sale_entry_insert ON platforms.stockx_sale_entry;
CREATE TRIGGER stockx_sale_entry_insert BEFORE INSERT ON platforms.stockx_sale_entry
    FOR EACH ROW
    WHEN (coalesce(current_setting('stockx_sync.entry_refresh', true), '') = '')
    EXECUTE FUNCTION platforms.stockx_sale_entry_insert();
CREATE TRIGGER stockx_sale_entry_insert_refresh AFTER INSERT ON platforms.stockx_sale_entry
    FOR EACH STATEMENT
    WHEN (coalesce(current_setting('stockx_sync.entry_refresh', true), '') <> '')
    EXECUTE FUNCTION integration.sale_entry_refresh_guard();
