-- Every queue as it is now, by name: its waiting, scheduled and active jobs, its
-- failed jobs, the finished jobs it keeps and the running totals of finished jobs
-- (queue_totals, counted by the maintenance leader at each statistics snapshot),
-- the jobs that finished in the last hour by the statistics history, the lag of
-- its oldest due job, and until when it is paused.
--
-- Failed jobs are counted here through job_failed, but never more than 1,001 per
-- queue: above 1,000 the figure is the last snapshot's count (at least 1,001), so
-- that the cost of a read does not grow with the failed jobs kept.
WITH {live_counts},
recent AS (
    SELECT s.queue, sum(s.completed) AS completed, sum(s.failed) AS failed
    FROM {schema}.queue_stats AS s
    WHERE s.taken_at > now() - interval '1 hour'
    GROUP BY s.queue
)
SELECT q.name, COALESCE(l.created, 0)::bigint AS created,
       COALESCE(l.scheduled, 0)::bigint AS scheduled,
       COALESCE(l.retry, 0)::bigint AS retry, COALESCE(l.active, 0)::bigint AS active,
       CASE WHEN f.failed <= 1000 THEN f.failed
            ELSE GREATEST(t.failed, f.failed) END AS failed,
       COALESCE(t.completed, 0) AS completed, COALESCE(t.cancelled, 0) AS cancelled,
       t.counted_at,
       COALESCE(t.completed_total, 0) AS completed_total,
       COALESCE(t.cancelled_total, 0) AS cancelled_total,
       COALESCE(t.failed_total, 0) AS failed_total,
       COALESCE(r.completed, 0)::bigint AS completed_last_hour,
       COALESCE(r.failed, 0)::bigint AS failed_last_hour,
       now() - l.oldest_due AS lag,
       CASE WHEN q.paused_until > now() THEN q.paused_until END AS paused_until
FROM {schema}.queue AS q
CROSS JOIN LATERAL (
    SELECT count(*) AS failed
    FROM (SELECT FROM {schema}.job AS j
          WHERE j.queue = q.name AND j.state = 'failed' LIMIT 1001) AS capped
) AS f
LEFT JOIN live AS l ON l.queue = q.name
LEFT JOIN {schema}.queue_totals AS t ON t.queue = q.name
LEFT JOIN recent AS r ON r.queue = q.name
ORDER BY q.name;
