-- The business's tables: what was bought (products.*) and how it sold on StockX (platforms.*).
-- Money is NUMERIC, never float. ROI is a fraction (0.25 = 25 %).

CREATE SCHEMA IF NOT EXISTS products;
CREATE SCHEMA IF NOT EXISTS platforms;
CREATE SCHEMA IF NOT EXISTS integration;

CREATE TABLE products.categories (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL UNIQUE CHECK (name <> ''),
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO products.categories (name) VALUES ('sneakers');

CREATE TABLE products.suppliers (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Stored trimmed with inner whitespace collapsed; unique regardless of case.
    name        text NOT NULL CHECK (name <> '' AND name = btrim(name)),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX suppliers_name_ci_key ON products.suppliers (lower(name));

CREATE TABLE products.sizes (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    value        text NOT NULL CHECK (value <> ''),
    -- Size chart: US (men's by default), US W, UK, EU, ...
    region       text NOT NULL DEFAULT 'US' CHECK (region <> ''),
    category_id  uuid NOT NULL REFERENCES products.categories (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (value, region, category_id)
);

CREATE TABLE products.products (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- The style ID (e.g. DD1391-100), upper-case.
    sku                text NOT NULL UNIQUE CHECK (sku <> '' AND sku = upper(btrim(sku))),
    category_id        uuid NOT NULL REFERENCES products.categories (id),
    name               text,
    brand              text,
    colorway           text,
    retail_price       numeric(12,2) CHECK (retail_price >= 0),
    release_date       date,
    stockx_product_id  text,
    stockx_url_key     text,
    -- When the catalog data came from StockX; NULL: not yet, or not found.
    enriched_at        timestamptz,
    stockx_lookup_status text CHECK (stockx_lookup_status IN ('found', 'not_found')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX products_stockx_product_id_idx ON products.products (stockx_product_id);

CREATE TABLE products.inventory (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    product_id         uuid NOT NULL REFERENCES products.products (id),
    size_id            uuid NOT NULL REFERENCES products.sizes (id),
    supplier_id        uuid NOT NULL REFERENCES products.suppliers (id),
    purchase_price     numeric(12,2) NOT NULL CHECK (purchase_price >= 0),
    purchase_date      date,
    status             text NOT NULL DEFAULT 'in_stock'
                       CHECK (status IN ('in_stock', 'listed', 'sold', 'returned')),
    external_ids       jsonb NOT NULL DEFAULT '{}'::jsonb,
    stockx_variant_id  text,
    notes              text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inventory_external_ids_idx ON products.inventory USING gin (external_ids);
CREATE INDEX inventory_product_idx ON products.inventory (product_id);
CREATE INDEX inventory_size_idx ON products.inventory (size_id);
CREATE INDEX inventory_supplier_idx ON products.inventory (supplier_id);
CREATE INDEX inventory_status_idx ON products.inventory (status);

CREATE TABLE platforms.stockx_listings (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    inventory_id       uuid NOT NULL UNIQUE REFERENCES products.inventory (id),
    product_id         uuid NOT NULL REFERENCES products.products (id),
    stockx_listing_id  text,
    ask_price          numeric(12,2) CHECK (ask_price >= 0),
    status             text NOT NULL DEFAULT 'active'
                       CHECK (status IN ('active', 'sold', 'cancelled')),
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stockx_listings_product_idx ON platforms.stockx_listings (product_id);

CREATE TABLE platforms.stockx_orders (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    listing_id           uuid NOT NULL UNIQUE REFERENCES platforms.stockx_listings (id),
    stockx_order_number  text NOT NULL CHECK (stockx_order_number <> ''),
    -- What the business recorded.
    sale_price           numeric(12,2) CHECK (sale_price >= 0),
    net_proceeds         numeric(12,2) NOT NULL,
    net_profit           numeric(12,2),
    roi                  numeric(12,4),
    currency             text NOT NULL DEFAULT 'EUR' CHECK (currency ~ '^[A-Z]{3}$'),
    sold_at              date NOT NULL,
    delivered_at         date,
    notes                text,
    -- What StockX says (filled by the worker).
    stockx_status            text,
    stockx_sale_price        numeric(12,2),
    stockx_total_payout      numeric(12,2),
    stockx_total_adjustments numeric(12,2),
    stockx_adjustments       jsonb,
    stockx_currency          text,
    stockx_product_id        text,
    stockx_variant_id        text,
    enrichment_status    text NOT NULL DEFAULT 'pending'
                         CHECK (enrichment_status IN ('pending', 'enriched', 'not_found', 'failed')),
    enrichment_error     text,
    enriched_at          timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT stockx_orders_order_number_key UNIQUE (stockx_order_number)
);
CREATE INDEX stockx_orders_sold_at_idx ON platforms.stockx_orders (sold_at);
CREATE INDEX stockx_orders_pending_idx ON platforms.stockx_orders (created_at)
    WHERE enrichment_status = 'pending';

CREATE TABLE platforms.marketplace_data (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    product_id         uuid NOT NULL REFERENCES products.products (id),
    stockx_product_id  text NOT NULL,
    stockx_variant_id  text NOT NULL,
    currency           text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    lowest_ask         numeric(12,2),
    highest_bid        numeric(12,2),
    sell_faster        numeric(12,2),
    earn_more          numeric(12,2),
    fetched_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stockx_variant_id, currency)
);
CREATE INDEX marketplace_data_product_idx ON platforms.marketplace_data (product_id);

-- updated_at follows every update.
CREATE FUNCTION integration.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;

CREATE TRIGGER products_touch BEFORE UPDATE ON products.products
    FOR EACH ROW EXECUTE FUNCTION integration.touch_updated_at();
CREATE TRIGGER inventory_touch BEFORE UPDATE ON products.inventory
    FOR EACH ROW EXECUTE FUNCTION integration.touch_updated_at();
CREATE TRIGGER stockx_orders_touch BEFORE UPDATE ON platforms.stockx_orders
    FOR EACH ROW EXECUTE FUNCTION integration.touch_updated_at();
