-- The daily summary (`stockx-sync report`, issue 14): what happened since a time, as
-- functions so that Metabase can ask them too (readable by stockx_sync_reader).

-- Sales recorded since p_since: all of them (entered), those that came through the Notion
-- import (a sync-log row says so), and what enrichment made of the orders it finished since.
CREATE FUNCTION reporting.sales_activity(p_since timestamptz)
RETURNS TABLE (entered bigint, imported bigint, enriched bigint, not_found bigint,
               enrichment_failed bigint, dead_letter_jobs bigint)
LANGUAGE sql STABLE AS $$
    SELECT
        (SELECT count(*) FROM platforms.stockx_orders WHERE created_at >= p_since),
        (SELECT count(*) FROM platforms.stockx_orders o
         WHERE o.created_at >= p_since
           AND EXISTS (SELECT 1 FROM integration.notion_sale_sync_log l
                       WHERE l.stockx_order_number = o.stockx_order_number
                         AND l.sync_status IN ('success', 'warning'))),
        (SELECT count(*) FROM platforms.stockx_orders
         WHERE enrichment_status = 'enriched' AND enriched_at >= p_since),
        (SELECT count(*) FROM platforms.stockx_orders
         WHERE enrichment_status = 'not_found' AND updated_at >= p_since),
        (SELECT count(*) FROM platforms.stockx_orders
         WHERE enrichment_status = 'failed' AND updated_at >= p_since),
        (SELECT count(*) FROM integration.enrichment_jobs
         WHERE state = 'failed' AND finished_at >= p_since)
$$;

-- Validation warnings per rule: opened and resolved since p_since, and open now.
CREATE FUNCTION reporting.warning_activity(p_since timestamptz)
RETURNS TABLE (rule text, opened bigint, resolved bigint, open_now bigint)
LANGUAGE sql STABLE AS $$
    SELECT w.rule,
           count(*) FILTER (WHERE w.created_at >= p_since),
           count(*) FILTER (WHERE w.resolved_at >= p_since),
           count(*) FILTER (WHERE w.resolved_at IS NULL)
    FROM integration.validation_warnings w
    WHERE w.created_at >= p_since OR w.resolved_at >= p_since OR w.resolved_at IS NULL
    GROUP BY w.rule
    ORDER BY w.rule
$$;
CREATE INDEX validation_warnings_created_idx ON integration.validation_warnings (created_at);
CREATE INDEX stockx_orders_created_idx ON platforms.stockx_orders (created_at);

GRANT EXECUTE ON FUNCTION reporting.sales_activity(timestamptz), reporting.warning_activity(timestamptz)
    TO stockx_sync_reader, stockx_sync_worker;
REVOKE EXECUTE ON FUNCTION reporting.sales_activity(timestamptz), reporting.warning_activity(timestamptz)
    FROM PUBLIC;
