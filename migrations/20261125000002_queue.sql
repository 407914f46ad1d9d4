-- The durable enrichment queue, filled by triggers. "NOTIFY wakes, the table is the truth."
--
-- Life cycle (one column, one CHECK):
--   available --claim--> running --ok--> completed
--                          |  \--transient error, attempts left--> retryable --(run_after)--> claimed again
--                          |  \--permanent error or attempts exhausted--> failed (dead letter)
--                          \--lease expired (worker died)--> retryable / failed  (the reaper)
-- Finished rows (completed, failed) are pruned after a retention period.

CREATE TABLE integration.enrichment_jobs (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN ('order', 'inventory')),
    -- platforms.stockx_orders.id or products.inventory.id, by kind.
    entity_id      uuid NOT NULL,
    state          text NOT NULL DEFAULT 'available'
                   CHECK (state IN ('available', 'running', 'retryable', 'completed', 'failed')),
    attempt        smallint NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts   smallint NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    run_after      timestamptz NOT NULL DEFAULT clock_timestamp(),
    locked_by      text,
    locked_until   timestamptz,
    -- enriched, not_found, ... : what the last attempt found.
    outcome        text,
    last_error     text,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    attempted_at   timestamptz,
    finished_at    timestamptz,
    CHECK ((state = 'running') = (locked_until IS NOT NULL)),
    CHECK ((state IN ('completed', 'failed')) = (finished_at IS NOT NULL))
);

-- One open job per row: the triggers insert with ON CONFLICT DO NOTHING against this.
CREATE UNIQUE INDEX enrichment_jobs_one_open_key ON integration.enrichment_jobs (kind, entity_id)
    WHERE state IN ('available', 'running', 'retryable');
-- The claim: due jobs in (run_after, id) order.
CREATE INDEX enrichment_jobs_claim_idx ON integration.enrichment_jobs (run_after, id)
    WHERE state IN ('available', 'retryable');
-- The reaper: running jobs whose lease ended.
CREATE INDEX enrichment_jobs_lease_idx ON integration.enrichment_jobs (locked_until)
    WHERE state = 'running';
-- Pruning and "recent failures".
CREATE INDEX enrichment_jobs_finished_idx ON integration.enrichment_jobs (finished_at)
    WHERE state IN ('completed', 'failed');
CREATE INDEX enrichment_jobs_entity_idx ON integration.enrichment_jobs (kind, entity_id);

-- A queue table is rewritten constantly: vacuum it early and leave room for HOT updates.
ALTER TABLE integration.enrichment_jobs SET (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0.0,
    autovacuum_vacuum_insert_threshold = 10000,
    autovacuum_analyze_scale_factor = 0.0,
    autovacuum_analyze_threshold = 5000,
    autovacuum_vacuum_cost_delay = 0
);

-- Enqueue from a trigger: TG_ARGV[0] is the kind. Never rejects the user's row: a failure to
-- enqueue is logged as a WARNING, and the worker's catch-up scan (`stockx-sync retry`) or a later
-- change enqueues it again.
--
-- The NOTIFY payload is the kind, constant, so PostgreSQL folds identical notifications within
-- one transaction: a bulk import sends one wake-up, not one per row. A session may set
-- `stockx_sync.skip_notify = on` (the Notion import does) and send one NOTIFY itself.
CREATE FUNCTION integration.enqueue_enrichment() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    BEGIN
        INSERT INTO integration.enrichment_jobs (kind, entity_id)
        VALUES (TG_ARGV[0], NEW.id)
        ON CONFLICT (kind, entity_id) WHERE state IN ('available', 'running', 'retryable')
        DO NOTHING;
        IF coalesce(current_setting('stockx_sync.skip_notify', true), '') <> 'on' THEN
            PERFORM pg_notify('stockx_sync_jobs', TG_ARGV[0]);
        END IF;
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'stockx-sync: could not enqueue % job for %: %', TG_ARGV[0], NEW.id, SQLERRM;
    END;
    RETURN NULL;
END $$;

CREATE TRIGGER stockx_orders_enqueue_insert AFTER INSERT ON platforms.stockx_orders
    FOR EACH ROW EXECUTE FUNCTION integration.enqueue_enrichment('order');
-- Only a change of what enrichment and validation read adds a job; the worker's own writes
-- (stockx_* columns, enrichment_status) do not.
CREATE TRIGGER stockx_orders_enqueue_update
    AFTER UPDATE OF stockx_order_number, listing_id, sale_price, net_proceeds, net_profit, roi,
                    currency, sold_at, delivered_at
    ON platforms.stockx_orders
    FOR EACH ROW
    WHEN (OLD.stockx_order_number IS DISTINCT FROM NEW.stockx_order_number
          OR OLD.listing_id IS DISTINCT FROM NEW.listing_id
          OR OLD.sale_price IS DISTINCT FROM NEW.sale_price
          OR OLD.net_proceeds IS DISTINCT FROM NEW.net_proceeds
          OR OLD.net_profit IS DISTINCT FROM NEW.net_profit
          OR OLD.roi IS DISTINCT FROM NEW.roi
          OR OLD.currency IS DISTINCT FROM NEW.currency
          OR OLD.sold_at IS DISTINCT FROM NEW.sold_at
          OR OLD.delivered_at IS DISTINCT FROM NEW.delivered_at)
    EXECUTE FUNCTION integration.enqueue_enrichment('order');

CREATE TRIGGER inventory_enqueue_insert AFTER INSERT ON products.inventory
    FOR EACH ROW EXECUTE FUNCTION integration.enqueue_enrichment('inventory');
CREATE TRIGGER inventory_enqueue_update
    AFTER UPDATE OF product_id, size_id, purchase_price, purchase_date ON products.inventory
    FOR EACH ROW
    WHEN (OLD.product_id IS DISTINCT FROM NEW.product_id
          OR OLD.size_id IS DISTINCT FROM NEW.size_id
          OR OLD.purchase_price IS DISTINCT FROM NEW.purchase_price
          OR OLD.purchase_date IS DISTINCT FROM NEW.purchase_date)
    EXECUTE FUNCTION integration.enqueue_enrichment('inventory');

-- What validation found. One open row per (entity, rule); a finding that no longer holds gets
-- resolved_at.
CREATE TABLE integration.validation_warnings (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entity_type          text NOT NULL CHECK (entity_type IN ('order', 'inventory')),
    entity_id            uuid NOT NULL,
    stockx_order_number  text,
    rule                 text NOT NULL CHECK (rule IN (
                             'profit_mismatch', 'roi_mismatch', 'sale_before_purchase',
                             'delivery_before_purchase', 'payout_mismatch',
                             'stockx_product_not_found', 'stockx_variant_not_found',
                             'non_positive_price')),
    message              text NOT NULL,
    details              jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at           timestamptz NOT NULL DEFAULT now(),
    resolved_at          timestamptz
);
CREATE UNIQUE INDEX validation_warnings_open_key
    ON integration.validation_warnings (entity_type, entity_id, rule) WHERE resolved_at IS NULL;
CREATE INDEX validation_warnings_rule_idx
    ON integration.validation_warnings (rule) WHERE resolved_at IS NULL;
CREATE INDEX validation_warnings_order_idx
    ON integration.validation_warnings (stockx_order_number);

-- One row per imported Notion record, as the design document describes.
CREATE TABLE integration.notion_sale_sync_log (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    stockx_order_number  varchar(100) NOT NULL,
    notion_page_id       varchar(100),
    sync_status          varchar(20) NOT NULL
                         CHECK (sync_status IN ('success', 'failed', 'warning', 'skipped')),
    trigger_type         varchar(20) NOT NULL
                         CHECK (trigger_type IN ('webhook', 'scheduled', 'manual')),
    entities_created     jsonb,
    validation_warnings  text[],
    error_message        text,
    sync_duration_ms     integer CHECK (sync_duration_ms >= 0),
    synced_at            timestamptz NOT NULL DEFAULT now(),
    synced_by            varchar(100),
    -- Which import run wrote the row (one run = one command or one batch-sync call).
    run_id               uuid
);
CREATE INDEX idx_notion_sync_order ON integration.notion_sale_sync_log (stockx_order_number);
CREATE INDEX idx_notion_sync_status ON integration.notion_sale_sync_log (sync_status);
CREATE INDEX idx_notion_sync_date ON integration.notion_sale_sync_log (synced_at DESC);
CREATE INDEX idx_notion_sync_run ON integration.notion_sale_sync_log (run_id);
