-- Releases held steps (waiting with nothing left to wait for, because their queue's
-- policy could have turned them away: settle_dependents.sql) whose key is free: at
-- most one per key, oldest first, as a send would be let in. The rest stay held
-- until a later pass. 'waiting' is the only state after 'failed' (job_held).
WITH held AS (
    SELECT j.id, j.queue, j.policy, COALESCE(j.singleton_key, '') AS key
    FROM {schema}.job AS j
    WHERE j.waiting_for = 0 AND j.state > 'failed'
    ORDER BY j.id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
free AS (
    SELECT DISTINCT ON (h.queue, h.key) h.id
    FROM held AS h
    WHERE NOT EXISTS (
        SELECT 1 FROM {schema}.job AS k
        WHERE k.queue = h.queue AND COALESCE(k.singleton_key, '') = h.key
          AND k.policy = h.policy
          AND (k.state = 'created' OR (h.policy = 'exclusive' AND k.state IN ('retry', 'active'))))
    ORDER BY h.queue, h.key, h.id
),
moved AS (
    UPDATE {schema}.job AS j
    SET state = 'created', start_after = greatest(j.start_after, now()),
        keep_until = greatest(j.start_after, now()) + (j.keep_until - j.start_after)
    FROM free AS f
    WHERE j.id = f.id
    RETURNING j.id, j.queue
)
SELECT count(*)::integer AS released, {notify_moved} AS notified
FROM moved;
