-- Rows inserted in bulk no longer pay a trigger call (and a subtransaction) each.
--
-- The queue's INSERT triggers on platforms.stockx_orders and products.inventory become
-- statement-level with a transition table: one INSERT of all the statement's jobs, one
-- subtransaction, one NOTIFY. A single Budibase sale is one row per statement either way; a
-- set-based import of 10,000 sales saved 20,000 subtransactions (each with its own transaction
-- ID), which had been most of its time. The UPDATE triggers stay row-level (their WHEN clauses
-- compare old and new values).
--
-- stockx_orders_follow skips its call in the WHEN clause while an entry trigger (or the import)
-- writes the order itself (`stockx_sync.entry_write`), instead of inside the function: the
-- function returned at once in that case, so the outcome is the same, without queueing a call
-- per row.

CREATE OR REPLACE FUNCTION integration.enqueue_enrichment() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_WHEN <> 'AFTER' OR TG_NARGS <> 1
       OR NOT ((TG_RELID = 'platforms.stockx_orders'::regclass AND TG_ARGV[0] = 'order')
               OR (TG_RELID = 'products.inventory'::regclass AND TG_ARGV[0] = 'inventory'))
       OR (TG_LEVEL = 'STATEMENT' AND TG_OP <> 'INSERT') THEN
        RAISE EXCEPTION 'integration.enqueue_enrichment() runs only as the queue trigger of platforms.stockx_orders and products.inventory, not on %',
                        TG_RELID::regclass
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    BEGIN
        IF TG_LEVEL = 'STATEMENT' THEN
            INSERT INTO integration.enrichment_jobs (kind, entity_id)
            SELECT TG_ARGV[0], n.id FROM enqueue_inserted n
            ON CONFLICT (kind, entity_id) WHERE state IN ('available', 'retryable')
            DO NOTHING;
            IF NOT EXISTS (SELECT 1 FROM enqueue_inserted) THEN
                RETURN NULL;
            END IF;
        ELSE
            INSERT INTO integration.enrichment_jobs (kind, entity_id)
            VALUES (TG_ARGV[0], NEW.id)
            ON CONFLICT (kind, entity_id) WHERE state IN ('available', 'retryable')
            DO NOTHING;
        END IF;
        IF coalesce(current_setting('stockx_sync.skip_notify', true), '') <> 'on' THEN
            PERFORM pg_notify('stockx_sync_jobs', TG_ARGV[0]);
        END IF;
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'stockx-sync: could not enqueue % jobs for % (%): %', TG_ARGV[0],
                      TG_RELID::regclass, TG_LEVEL, SQLERRM;
    END;
    RETURN NULL;
END $$;
REVOKE EXECUTE ON FUNCTION integration.enqueue_enrichment() FROM PUBLIC;

DROP TRIGGER stockx_orders_enqueue_insert ON platforms.stockx_orders;
CREATE TRIGGER stockx_orders_enqueue_insert AFTER INSERT ON platforms.stockx_orders
    REFERENCING NEW TABLE AS enqueue_inserted
    FOR EACH STATEMENT EXECUTE FUNCTION integration.enqueue_enrichment('order');
DROP TRIGGER inventory_enqueue_insert ON products.inventory;
CREATE TRIGGER inventory_enqueue_insert AFTER INSERT ON products.inventory
    REFERENCING NEW TABLE AS enqueue_inserted
    FOR EACH STATEMENT EXECUTE FUNCTION integration.enqueue_enrichment('inventory');

DROP TRIGGER stockx_orders_follow ON platforms.stockx_orders;
CREATE TRIGGER stockx_orders_follow AFTER INSERT OR UPDATE ON platforms.stockx_orders
    FOR EACH ROW
    WHEN (coalesce(current_setting('stockx_sync.entry_write', true), '') <> 'on')
    EXECUTE FUNCTION integration.sale_entry_follow();
