-- Fails up to %(limit)s jobs that waited past their retention (keep_until)
-- without being claimed: they are never claimed now, so they end as failed with
-- the reason recorded as their error (no retry, no dead-letter copy). Steps that
-- wait for dependencies ('waiting') are not due yet, and do not expire.
WITH expired AS (
    SELECT j.id
    FROM {schema}.job AS j
    WHERE j.state < 'active' AND j.keep_until <= now()
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
record AS (
    SELECT %(error)s::jsonb || jsonb_build_object('failed_at', now()) AS error
)
UPDATE {schema}.job AS j
SET state = 'failed',
    completed_at = now(),
    error = r.error,
    errors = j.errors || jsonb_build_array(r.error)
FROM expired, record AS r
WHERE j.id = expired.id
RETURNING j.id;
