-- Takes a snapshot of every queue into queue_stats: its live jobs by state, the
-- jobs that finished after %(since)s (the previous snapshot, stats_since.sql) by
-- outcome, and the lag: how long the oldest due job has waited. Returns the rows
-- written. %(since)s is a value, not a subquery, so that the planner reads only
-- the recent end of job_finished rather than the whole history.
WITH RECURSIVE {finished_retentions},
-- Waiting and active jobs through their own partial indexes.
live AS (
    SELECT w.queue, sum(w.created) AS created, sum(w.retry) AS retry,
           sum(w.active) AS active, min(w.oldest_due) AS oldest_due
    FROM (
        SELECT j.queue,
               count(*) FILTER (WHERE j.state = 'created') AS created,
               count(*) FILTER (WHERE j.state = 'retry') AS retry,
               0 AS active,
               min(j.start_after) FILTER (WHERE j.start_after <= now()) AS oldest_due
        FROM {schema}.job AS j
        WHERE j.state < 'active'
        GROUP BY j.queue
        UNION ALL
        SELECT j.queue, 0, 0, count(*), NULL
        FROM {schema}.job AS j
        WHERE j.state = 'active'
        GROUP BY j.queue
    ) AS w
    GROUP BY w.queue
),
finished AS (
    SELECT f.queue,
           count(*) FILTER (WHERE f.state = 'completed') AS completed,
           count(*) FILTER (WHERE f.state = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE f.state = 'failed') AS failed
    FROM retentions AS r
    CROSS JOIN LATERAL (
        SELECT j.queue, j.state
        FROM {schema}.job AS j
        WHERE j.state > 'active' AND j.delete_after = r.delete_after
          AND j.completed_at > %(since)s
    ) AS f
    GROUP BY f.queue
)
INSERT INTO {schema}.queue_stats AS s
    (queue, taken_at, created, retry, active, completed, cancelled, failed, lag)
SELECT q.name, now(), COALESCE(l.created, 0), COALESCE(l.retry, 0), COALESCE(l.active, 0),
       COALESCE(f.completed, 0), COALESCE(f.cancelled, 0), COALESCE(f.failed, 0),
       now() - l.oldest_due
FROM {schema}.queue AS q
LEFT JOIN live AS l ON l.queue = q.name
LEFT JOIN finished AS f ON f.queue = q.name
ON CONFLICT (queue, taken_at) DO NOTHING
RETURNING s.queue, s.taken_at, s.created, s.retry, s.active, s.completed, s.cancelled,
          s.failed, s.lag;
