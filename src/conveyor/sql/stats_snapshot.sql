-- Takes a snapshot of every queue into queue_stats: its live jobs by state, the
-- jobs that finished after %(since)s (the previous snapshot, stats_since.sql) by
-- outcome, and the lag: how long the oldest due job has waited. Returns the rows
-- written. %(since)s is a value, not a subquery, so that the planner reads only
-- the recent end of job_finished rather than the whole history.
WITH RECURSIVE {finished_retentions},
{live_counts},
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
