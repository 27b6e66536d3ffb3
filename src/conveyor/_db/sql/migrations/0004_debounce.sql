-- Debounce: a job sent with debounce_seconds waits that long, and a later send
-- with the same singleton key while it still waits replaces it (enqueue.sql).
-- debounce_window marks such jobs (NULL for every other job). The index holds at
-- most one waiting debounced job per key and is the arbiter of the replacing
-- INSERT ... ON CONFLICT DO UPDATE. A job that was ever claimed (attempt > 0)
-- leaves it, so a job handed back to its queue never collides with a newer one.
ALTER TABLE {schema}.job ADD COLUMN debounce_window interval;

CREATE UNIQUE INDEX job_debounce ON {schema}.job (queue, singleton_key)
    WHERE state = 'created' AND attempt = 0 AND debounce_window IS NOT NULL;
