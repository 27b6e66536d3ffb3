-- What a bulk insert written straight into the job table (enqueue_direct.sql)
-- takes from its queue: the defaults of every option, and the transaction's
-- time, which the jobs' times count from (as now() does in enqueue.sql).
SELECT q.name IS NOT NULL AS queue_found, now() AS now, q.policy, q.priority, q.retry_limit,
       q.retry_delay, q.retry_backoff, q.retry_delay_max, q.expire_in, q.retention,
       q.delete_after, q.dead_letter
FROM (SELECT) AS one
LEFT JOIN {schema}.queue AS q ON q.name = %(queue)s;
