-- Reporting views for Metabase (and Grafana's PostgreSQL panels), readable by
-- stockx_sync_reader. Profit and ROI here are computed from the prices (net proceeds −
-- purchase price), not taken from the recorded columns, so a typo in a recorded profit (which
-- validation flags) does not skew the figures.

CREATE SCHEMA IF NOT EXISTS reporting;

CREATE VIEW reporting.sales AS
SELECT o.id                                   AS order_id,
       o.stockx_order_number,
       o.sold_at,
       o.currency,
       o.sale_price,
       o.net_proceeds,
       i.purchase_price,
       i.purchase_date,
       o.net_proceeds - i.purchase_price      AS profit,
       CASE WHEN i.purchase_price > 0
            THEN (o.net_proceeds - i.purchase_price) / i.purchase_price END AS roi,
       p.sku,
       p.name                                 AS product_name,
       coalesce(p.brand, '(unknown)')         AS brand,
       sup.name                               AS supplier,
       o.enrichment_status
FROM platforms.stockx_orders o
JOIN platforms.stockx_listings l ON l.id = o.listing_id
JOIN products.inventory i        ON i.id = l.inventory_id
JOIN products.products p         ON p.id = i.product_id
JOIN products.suppliers sup      ON sup.id = i.supplier_id;

CREATE VIEW reporting.sales_by_month AS
SELECT date_trunc('month', sold_at)::date AS month,
       count(*)                           AS sales,
       sum(sale_price)                    AS revenue,
       sum(net_proceeds)                  AS net_proceeds,
       sum(profit)                        AS profit,
       round(avg(roi), 4)                 AS avg_roi
FROM reporting.sales
GROUP BY 1;

CREATE VIEW reporting.profit_by_supplier AS
SELECT supplier, count(*) AS sales, sum(net_proceeds) AS net_proceeds, sum(profit) AS profit,
       round(avg(roi), 4) AS avg_roi
FROM reporting.sales GROUP BY supplier;

CREATE VIEW reporting.profit_by_brand AS
SELECT brand, count(*) AS sales, sum(net_proceeds) AS net_proceeds, sum(profit) AS profit,
       round(avg(roi), 4) AS avg_roi
FROM reporting.sales GROUP BY brand;

CREATE VIEW reporting.profit_by_product AS
SELECT sku, max(product_name) AS product_name, max(brand) AS brand, count(*) AS sales,
       sum(net_proceeds) AS net_proceeds, sum(profit) AS profit, round(avg(roi), 4) AS avg_roi
FROM reporting.sales GROUP BY sku;

-- Unsold stock and how long it has been held.
CREATE VIEW reporting.inventory_age AS
SELECT i.id AS inventory_id, p.sku, p.name AS product_name, s.value AS size, s.region AS size_region,
       sup.name AS supplier, i.status, i.purchase_price, i.purchase_date,
       current_date - i.purchase_date AS days_held
FROM products.inventory i
JOIN products.products p    ON p.id = i.product_id
JOIN products.sizes s       ON s.id = i.size_id
JOIN products.suppliers sup ON sup.id = i.supplier_id
WHERE i.status IN ('in_stock', 'listed');

CREATE VIEW reporting.open_warnings_by_rule AS
SELECT rule, count(*) AS open_warnings, min(created_at) AS oldest
FROM integration.validation_warnings
WHERE resolved_at IS NULL
GROUP BY rule;

CREATE VIEW reporting.enrichment_coverage AS
SELECT count(*)                                                   AS total,
       count(*) FILTER (WHERE enrichment_status = 'enriched')     AS enriched,
       count(*) FILTER (WHERE enrichment_status = 'pending')      AS pending,
       count(*) FILTER (WHERE enrichment_status = 'not_found')    AS not_found,
       count(*) FILTER (WHERE enrichment_status = 'failed')       AS failed,
       round(count(*) FILTER (WHERE enrichment_status = 'enriched')::numeric
             / nullif(count(*), 0), 4)                            AS enriched_share
FROM platforms.stockx_orders;

GRANT USAGE ON SCHEMA reporting TO stockx_sync_reader, stockx_sync_worker;
GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO stockx_sync_reader, stockx_sync_worker;
