-- Only a WAITING job (available, retryable) may absorb a new event for its row.
--
-- Before, the one-open-job index also covered `running`: an edit made while the row's job was
-- running hit the index, the trigger's ON CONFLICT DO NOTHING dropped the new job, and the
-- running job had already read the old row, so the edit was never enriched or checked. Now the
-- edit queues a second job, which the claim holds back until the running one has finished (the
-- claim skips a row that has a running job), so two jobs of one row never run at once and the
-- second one reads the new facts.

DROP INDEX integration.enrichment_jobs_one_open_key;
CREATE UNIQUE INDEX enrichment_jobs_one_waiting_key ON integration.enrichment_jobs (kind, entity_id)
    WHERE state IN ('available', 'retryable');

-- The queue trigger's ON CONFLICT names the same predicate: migration 31 redefines it (as a
-- statement-level trigger) with `WHERE state IN ('available', 'retryable')`.

COMMENT ON COLUMN integration.enrichment_jobs.max_attempts IS
    'attempts before the job is dead-lettered: set from worker.max_attempts when it is claimed';
