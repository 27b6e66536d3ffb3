-- Takes a snapshot of every queue into queue_stats: its live jobs by state, the
-- jobs that finished after %(since)s (the previous snapshot, stats_since.sql) by
-- outcome, and the lag: how long the oldest due job has waited. In the same
-- statement it brings each queue's totals (queue_totals) up to date, so that
-- readers never count finished history themselves: the snapshot's finished jobs
-- are added to the running totals and to the finished jobs kept, and every 10
-- minutes (or for a queue never counted) the finished jobs kept are counted
-- afresh, which reads every finished row once and corrects what retention and
-- deletions took away in between. Returns the snapshot rows written. %(since)s is a value, not a subquery, so that the planner
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
recount AS (
    SELECT EXISTS (
        SELECT FROM {schema}.queue AS q
        LEFT JOIN {schema}.queue_totals AS t ON t.queue = q.name
        WHERE t.recounted_at IS NULL OR t.recounted_at < now() - interval '10 minutes'
    ) AS due
),
kept AS (
    SELECT j.queue,
           count(*) FILTER (WHERE j.state = 'completed') AS completed,
           count(*) FILTER (WHERE j.state = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE j.state = 'failed') AS failed
    FROM {schema}.job AS j
    WHERE j.state > 'active' AND (SELECT r.due FROM recount AS r)
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
    -- excluded.*_total carry the snapshot's finished jobs; excluded's kept counts
    -- are fresh only when excluded.recounted_at is set.
    INSERT INTO {schema}.queue_totals AS t
        (queue, counted_at, recounted_at, completed, cancelled, failed,
         completed_total, cancelled_total, failed_total)
    SELECT s.queue, s.taken_at, CASE WHEN r.due THEN s.taken_at END,
           CASE WHEN r.due THEN COALESCE(k.completed, 0) ELSE s.completed END,
           CASE WHEN r.due THEN COALESCE(k.cancelled, 0) ELSE s.cancelled END,
           CASE WHEN r.due THEN COALESCE(k.failed, 0) ELSE s.failed END,
           s.completed, s.cancelled, s.failed
    FROM taken AS s
    CROSS JOIN recount AS r
    LEFT JOIN kept AS k ON k.queue = s.queue
    ON CONFLICT (queue) DO UPDATE
    SET counted_at = excluded.counted_at,
        recounted_at = COALESCE(excluded.recounted_at, t.recounted_at),
        completed = CASE WHEN excluded.recounted_at IS NULL
                         THEN t.completed + excluded.completed_total ELSE excluded.completed END,
        cancelled = CASE WHEN excluded.recounted_at IS NULL
                         THEN t.cancelled + excluded.cancelled_total ELSE excluded.cancelled END,
        failed = CASE WHEN excluded.recounted_at IS NULL
                      THEN t.failed + excluded.failed_total ELSE excluded.failed END,
        completed_total = t.completed_total + excluded.completed_total,
        cancelled_total = t.cancelled_total + excluded.cancelled_total,
        failed_total = t.failed_total + excluded.failed_total
)
SELECT * FROM taken;
