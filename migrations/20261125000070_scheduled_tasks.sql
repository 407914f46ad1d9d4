-- The worker's scheduled tasks (the nightly Notion reconciliation, the daily refresh of stale
-- enrichments). One row per task is its lease and its memory:
--
-- - `next_run_at` is the slot due next. A worker claims a due task with one UPDATE that also
--   requires the lease to be free (`locked_until` NULL or past), so with several workers a slot
--   runs once; the running worker renews `locked_until` while it works.
-- - `next_run_at` moves on only when the run finishes. A run that never finished (the worker
--   died, or every worker was down at the time) stays due and runs at the next start, or as
--   soon as the lease of the dead worker ends.
--
-- A row lease, not an advisory lock: the state has to outlive every connection anyway (for
-- the catch-up), it needs no connection held for the length of a run, and it works through
-- PgBouncer in transaction mode, where session advisory locks do not.
CREATE TABLE integration.scheduled_tasks (
    task                  text PRIMARY KEY,
    -- The cron expression and time zone `next_run_at` was computed from.
    schedule              text NOT NULL,
    next_run_at           timestamptz NOT NULL,
    last_started_at       timestamptz,
    last_finished_at      timestamptz,
    last_outcome          text CHECK (last_outcome IN ('success', 'failed')),
    last_error            text,
    -- What the last run did, in a line ("created 3, updated 0, ...").
    last_summary          text,
    last_success_at       timestamptz,
    consecutive_failures  integer NOT NULL DEFAULT 0,
    locked_by             text,
    locked_until          timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    CHECK ((locked_by IS NULL) = (locked_until IS NULL))
);

-- Every run, for `status` and for checking that a slot ran once. Kept 90 days.
CREATE TABLE integration.scheduled_task_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task         text NOT NULL,
    -- The `next_run_at` the run was claimed for.
    slot         timestamptz NOT NULL,
    worker       text NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL,
    outcome      text NOT NULL CHECK (outcome IN ('success', 'failed')),
    detail       text
);
CREATE INDEX scheduled_task_runs_task_idx ON integration.scheduled_task_runs (task, started_at DESC);

GRANT SELECT, INSERT, UPDATE, DELETE
    ON integration.scheduled_tasks, integration.scheduled_task_runs TO stockx_sync_worker;
GRANT SELECT ON integration.scheduled_tasks, integration.scheduled_task_runs TO stockx_sync_reader;
