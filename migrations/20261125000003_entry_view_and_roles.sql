-- platforms.stockx_sale_entry: one flat row per StockX sale, insertable.
--
-- The manual process failed on foreign keys: a sale needs a supplier, a size, a product, an
-- inventory item, a listing and an order, created in the right order. One INSERT into this view
-- does all of it in one statement (so one transaction): supplier, size and product are reused
-- when they exist (supplier by name, trimmed and case-insensitive; product by SKU), inventory
-- (status sold), listing and order are created. Budibase forms and the Notion import write here.

CREATE VIEW platforms.stockx_sale_entry AS
SELECT o.stockx_order_number,
       p.sku,
       s.value          AS size,
       s.region         AS size_region,
       sup.name         AS supplier,
       i.purchase_price,
       i.purchase_date,
       o.sale_price,
       o.net_proceeds,
       o.net_profit     AS profit,
       o.roi,
       o.sold_at,
       o.delivered_at,
       o.notes
FROM platforms.stockx_orders o
JOIN platforms.stockx_listings l ON l.id = o.listing_id
JOIN products.inventory i        ON i.id = l.inventory_id
JOIN products.products p         ON p.id = i.product_id
JOIN products.sizes s            ON s.id = i.size_id
JOIN products.suppliers sup      ON sup.id = i.supplier_id;

COMMENT ON VIEW platforms.stockx_sale_entry IS
    'Insert one StockX sale here (Budibase, imports): supplier, size and product are created or reused; inventory, listing and order are created. profit and roi are computed when left empty.';

CREATE FUNCTION platforms.stockx_sale_entry_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_order_number text := btrim(NEW.stockx_order_number);
    v_sku          text := upper(btrim(NEW.sku));
    v_size         text := btrim(NEW.size);
    v_region       text := upper(coalesce(nullif(btrim(NEW.size_region), ''), 'US'));
    v_supplier     text := regexp_replace(btrim(NEW.supplier), '\s+', ' ', 'g');
    v_category     uuid;
    v_supplier_id  uuid;
    v_size_id      uuid;
    v_product_id   uuid;
    v_inventory_id uuid;
    v_listing_id   uuid;
BEGIN
    -- Required columns, named in the error (Budibase shows the message to the user).
    IF nullif(v_order_number, '') IS NULL THEN
        RAISE EXCEPTION 'stockx_sale_entry: stockx_order_number is required'
            USING ERRCODE = 'not_null_violation', COLUMN = 'stockx_order_number';
    ELSIF nullif(v_sku, '') IS NULL THEN
        RAISE EXCEPTION 'stockx_sale_entry: sku is required (order %)', v_order_number
            USING ERRCODE = 'not_null_violation', COLUMN = 'sku';
    ELSIF nullif(v_size, '') IS NULL THEN
        RAISE EXCEPTION 'stockx_sale_entry: size is required (order %)', v_order_number
            USING ERRCODE = 'not_null_violation', COLUMN = 'size';
    ELSIF nullif(v_supplier, '') IS NULL THEN
        RAISE EXCEPTION 'stockx_sale_entry: supplier is required (order %)', v_order_number
            USING ERRCODE = 'not_null_violation', COLUMN = 'supplier';
    ELSIF NEW.purchase_price IS NULL THEN
        RAISE EXCEPTION 'stockx_sale_entry: purchase_price is required (order %)', v_order_number
            USING ERRCODE = 'not_null_violation', COLUMN = 'purchase_price';
    ELSIF NEW.net_proceeds IS NULL THEN
        RAISE EXCEPTION 'stockx_sale_entry: net_proceeds is required (order %)', v_order_number
            USING ERRCODE = 'not_null_violation', COLUMN = 'net_proceeds';
    ELSIF NEW.sold_at IS NULL THEN
        RAISE EXCEPTION 'stockx_sale_entry: sold_at is required (order %)', v_order_number
            USING ERRCODE = 'not_null_violation', COLUMN = 'sold_at';
    END IF;

    IF EXISTS (SELECT 1 FROM platforms.stockx_orders WHERE stockx_order_number = v_order_number) THEN
        RAISE EXCEPTION 'StockX order % is already recorded', v_order_number
            USING ERRCODE = 'unique_violation',
                  CONSTRAINT = 'stockx_orders_order_number_key',
                  HINT = 'Each StockX order number can be entered once; edit the existing sale instead.';
    END IF;

    SELECT id INTO v_category FROM products.categories WHERE name = 'sneakers';

    INSERT INTO products.suppliers (name) VALUES (v_supplier) ON CONFLICT DO NOTHING;
    SELECT id INTO STRICT v_supplier_id FROM products.suppliers WHERE lower(name) = lower(v_supplier);

    INSERT INTO products.sizes (value, region, category_id) VALUES (v_size, v_region, v_category)
        ON CONFLICT DO NOTHING;
    SELECT id INTO STRICT v_size_id FROM products.sizes
        WHERE value = v_size AND region = v_region AND category_id = v_category;

    INSERT INTO products.products (sku, category_id) VALUES (v_sku, v_category) ON CONFLICT DO NOTHING;
    SELECT id INTO STRICT v_product_id FROM products.products WHERE sku = v_sku;

    INSERT INTO products.inventory (product_id, size_id, supplier_id, purchase_price, purchase_date,
                                    status, external_ids)
    VALUES (v_product_id, v_size_id, v_supplier_id, NEW.purchase_price, NEW.purchase_date,
            'sold', jsonb_build_object('stockx_order_number', v_order_number))
    RETURNING id INTO v_inventory_id;

    INSERT INTO platforms.stockx_listings (inventory_id, product_id, ask_price, status)
    VALUES (v_inventory_id, v_product_id, NEW.sale_price, 'sold')
    RETURNING id INTO v_listing_id;

    -- Given profit/roi are stored as given (validation compares them later); empty ones are
    -- computed from the prices.
    NEW.profit := coalesce(NEW.profit, round(NEW.net_proceeds - NEW.purchase_price, 2));
    NEW.roi := coalesce(NEW.roi, CASE WHEN NEW.purchase_price > 0
                        THEN round((NEW.net_proceeds - NEW.purchase_price) / NEW.purchase_price, 4)
                        END);

    INSERT INTO platforms.stockx_orders (listing_id, stockx_order_number, sale_price, net_proceeds,
                                         net_profit, roi, sold_at, delivered_at, notes)
    VALUES (v_listing_id, v_order_number, NEW.sale_price, NEW.net_proceeds, NEW.profit, NEW.roi,
            NEW.sold_at, NEW.delivered_at, NEW.notes);

    NEW.stockx_order_number := v_order_number;
    NEW.sku := v_sku;
    NEW.size := v_size;
    NEW.size_region := v_region;
    NEW.supplier := (SELECT name FROM products.suppliers WHERE id = v_supplier_id);
    RETURN NEW;
END $$;

CREATE TRIGGER stockx_sale_entry_insert INSTEAD OF INSERT ON platforms.stockx_sale_entry
    FOR EACH ROW EXECUTE FUNCTION platforms.stockx_sale_entry_insert();

-- Roles: NOLOGIN groups that login roles join with GRANT. Roles are global to the server, so
-- creating one tolerates another database's migration doing the same at the same moment.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['stockx_sync_worker', 'stockx_sync_entry', 'stockx_sync_reader'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
END $$;

GRANT USAGE ON SCHEMA products, platforms, integration
    TO stockx_sync_worker, stockx_sync_entry, stockx_sync_reader;

-- The worker: reads everything, writes enrichment results and the queue.
GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA products, platforms TO stockx_sync_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA integration TO stockx_sync_worker;
GRANT INSERT ON platforms.stockx_sale_entry TO stockx_sync_worker;

-- Budibase: enters sales through the view and reads the lookups for its dropdowns.
GRANT SELECT, INSERT ON platforms.stockx_sale_entry TO stockx_sync_entry;
GRANT SELECT ON products.categories, products.suppliers, products.sizes, products.products
    TO stockx_sync_entry;

-- Metabase: reads.
GRANT SELECT ON ALL TABLES IN SCHEMA products, platforms, integration TO stockx_sync_reader;
