-- Every queue as it is now, by name: its waiting and active jobs, its failed jobs
-- (through job_failed), the jobs that finished in the last hour by the statistics
-- history, the lag of its oldest due job, and until when it is paused.
WITH {live_counts},
failed AS (
    SELECT j.queue, count(*) AS failed
    FROM {schema}.job AS j
    WHERE j.state = 'failed'
    GROUP BY j.queue
),
recent AS (
    SELECT s.queue, sum(s.completed) AS completed, sum(s.failed) AS failed
    FROM {schema}.queue_stats AS s
    WHERE s.taken_at > now() - interval '1 hour'
    GROUP BY s.queue
)
SELECT q.name, COALESCE(l.created, 0)::bigint AS created,
       COALESCE(l.retry, 0)::bigint AS retry, COALESCE(l.active, 0)::bigint AS active,
       COALESCE(f.failed, 0) AS failed,
       COALESCE(r.completed, 0)::bigint AS completed_last_hour,
       COALESCE(r.failed, 0)::bigint AS failed_last_hour,
       now() - l.oldest_due AS lag,
       CASE WHEN q.paused_until > now() THEN q.paused_until END AS paused_until
FROM {schema}.queue AS q
LEFT JOIN live AS l ON l.queue = q.name
LEFT JOIN failed AS f ON f.queue = q.name
LEFT JOIN recent AS r ON r.queue = q.name
ORDER BY q.name;
