-- Notion write-back: a job kind of its own (retried by the queue like enrichment), and what
-- was written, so that a status is sent only when it changes and a warning is commented once.

-- NOT VALID, then VALIDATE: the check of existing rows does not block the queue.
ALTER TABLE integration.enrichment_jobs DROP CONSTRAINT enrichment_jobs_kind_check;
ALTER TABLE integration.enrichment_jobs ADD CONSTRAINT enrichment_jobs_kind_check
    CHECK (kind IN ('order', 'inventory', 'notion_writeback')) NOT VALID;
ALTER TABLE integration.enrichment_jobs VALIDATE CONSTRAINT enrichment_jobs_kind_check;
COMMENT ON COLUMN integration.enrichment_jobs.entity_id IS
    'platforms.stockx_orders.id (order, notion_writeback) or products.inventory.id (inventory)';

-- The status last written to each page.
CREATE TABLE integration.notion_writeback_pages (
    page_id      text PRIMARY KEY,
    order_id     uuid NOT NULL,
    status_text  text NOT NULL,
    written_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notion_writeback_pages_order_idx ON integration.notion_writeback_pages (order_id);

-- One row per validation warning commented on a page: never twice.
CREATE TABLE integration.notion_writeback_comments (
    page_id      text NOT NULL,
    warning_id   bigint NOT NULL,
    written_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (page_id, warning_id)
);

GRANT SELECT, INSERT, UPDATE, DELETE
    ON integration.notion_writeback_pages, integration.notion_writeback_comments
    TO stockx_sync_worker;
GRANT SELECT ON integration.notion_writeback_pages, integration.notion_writeback_comments
    TO stockx_sync_reader;
