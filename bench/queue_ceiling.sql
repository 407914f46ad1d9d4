-- The queue's SQL-only ceiling: the worker's claim of :n jobs (the statement of
-- src/queue/mod.rs, claim_sql!) and the batched completion of
-- those jobs, one transaction each, as pgbench drives them (no worker, no Rust).
--
--   PGOPTIONS='-c synchronous_commit=off' pgbench -n -M extended -c 1 -t 1500 -D n=8 -f bench/queue_ceiling.sql DB
--
-- DB: a migrated database whose integration.enrichment_jobs holds enough available jobs, e.g.
--   INSERT INTO integration.enrichment_jobs (kind, entity_id)
--   SELECT 'inventory', gen_random_uuid() FROM generate_series(1, 200000); VACUUM ANALYZE integration.enrichment_jobs;
-- Jobs/s = tps × n.
WITH next AS (
     SELECT id FROM integration.enrichment_jobs j
     WHERE state IN ('available', 'retryable') AND run_after <= clock_timestamp()
       AND NOT EXISTS (
           SELECT 1 FROM integration.enrichment_jobs r
           WHERE r.kind = j.kind AND r.entity_id = j.entity_id
             AND r.state = 'running')
     ORDER BY run_after, id
     LIMIT :n::int
     FOR UPDATE SKIP LOCKED
 ), c AS (
 UPDATE integration.enrichment_jobs j
 SET state = 'running', attempt = j.attempt + 1, max_attempts = 3, locked_by = 'pgb',
     locked_until = clock_timestamp() + make_interval(secs => 30), attempted_at = clock_timestamp()
 FROM next WHERE j.id = next.id
 RETURNING j.id, j.kind, j.entity_id, j.attempt, j.max_attempts, extract(epoch FROM clock_timestamp() - j.created_at)::float8)
 SELECT array_agg(id)::text AS ids FROM c
\gset
UPDATE integration.enrichment_jobs j
 SET state = 'completed', outcome = d.outcome, finished_at = clock_timestamp(),
     locked_by = NULL, locked_until = NULL, last_error = NULL
 FROM unnest(:ids::bigint[], array_fill('enriched'::text, ARRAY[:n::int])) AS d(id, outcome)
 WHERE j.id = d.id AND j.state = 'running' AND j.locked_by = 'pgb';
