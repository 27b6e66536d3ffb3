-- Takes a snapshot of every queue into queue_stats: its live jobs by state, the
-- jobs that finished after %(since)s (the previous snapshot, stats_since.sql) by
-- outcome, and the lag: how long the oldest due job has waited. In the same
-- statement it counts the finished jobs each queue keeps, by outcome, and adds the
-- snapshot's finished jobs to the queue's running totals (queue_totals), so that
-- readers of those figures never count finished history themselves. Returns the
-- snapshot rows written. %(since)s is a value, not a subquery, so that the planner
-- reads only the recent end of job_finished for the snapshot's own counts.
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
),
kept AS (
    SELECT j.queue,
           count(*) FILTER (WHERE j.state = 'completed') AS completed,
           count(*) FILTER (WHERE j.state = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE j.state = 'failed') AS failed
    FROM {schema}.job AS j
    WHERE j.state > 'active'
    GROUP BY j.queue
),
taken AS (
    INSERT INTO {schema}.queue_stats AS s
        (queue, taken_at, created, scheduled, retry, active, completed, cancelled, failed, lag)
    SELECT q.name, now(), COALESCE(l.created, 0), COALESCE(l.scheduled, 0),
           COALESCE(l.retry, 0), COALESCE(l.active, 0),
           COALESCE(f.completed, 0), COALESCE(f.cancelled, 0), COALESCE(f.failed, 0),
           now() - l.oldest_due
    FROM {schema}.queue AS q
    LEFT JOIN live AS l ON l.queue = q.name
    LEFT JOIN finished AS f ON f.queue = q.name
    ON CONFLICT (queue, taken_at) DO NOTHING
    RETURNING s.queue, s.taken_at, s.created, s.scheduled, s.retry, s.active, s.completed,
              s.cancelled, s.failed, s.lag
),
totals AS (
    INSERT INTO {schema}.queue_totals AS t
        (queue, counted_at, completed, cancelled, failed,
         completed_total, cancelled_total, failed_total)
    SELECT s.queue, s.taken_at, COALESCE(k.completed, 0), COALESCE(k.cancelled, 0),
           COALESCE(k.failed, 0), s.completed, s.cancelled, s.failed
    FROM taken AS s
    LEFT JOIN kept AS k ON k.queue = s.queue
    ON CONFLICT (queue) DO UPDATE
    SET counted_at = excluded.counted_at, completed = excluded.completed,
        cancelled = excluded.cancelled, failed = excluded.failed,
        completed_total = t.completed_total + excluded.completed_total,
        cancelled_total = t.cancelled_total + excluded.cancelled_total,
        failed_total = t.failed_total + excluded.failed_total
)
SELECT * FROM taken;
