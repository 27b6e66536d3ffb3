-- Whether claims of a queue go through claim_flow.sql (flow): it has a limit, is
-- fair, or has keys with settings of their own. For such a queue, whether due jobs
-- without a group key wait (unkeyed): finding them takes a scan of the queue's
-- waiting jobs, which claims skip while there are none. Then the defaults its
-- jobs take, which a worker's claims leave out of the rows (claimed_columns.sql),
-- and whether an active job's lease lapsed (lapsed), which a fetch settles before
-- it claims (decision 42).
SELECT f.flow,
       CASE WHEN f.flow THEN EXISTS (
           SELECT 1 FROM {schema}.job AS j
           WHERE j.queue = f.name AND j.state < 'active' AND j.group_key IS NULL
             AND j.start_after <= now())
       ELSE false END AS unkeyed,
       f.priority, f.retry_limit, f.retry_delay, f.retry_backoff, f.expire_in, f.delete_after,
       f.retention, f.policy,
       EXISTS (SELECT 1 FROM {schema}.job AS j
               WHERE j.queue = f.name AND j.state = 'active' AND j.lease_expires_at < now())
           AS lapsed
FROM (
    SELECT q.name, q.priority, q.retry_limit, q.retry_delay, q.retry_backoff, q.expire_in,
           q.delete_after, q.retention, q.policy,
           q.rate_limit IS NOT NULL OR q.group_concurrency IS NOT NULL
           OR q.group_rate_limit IS NOT NULL OR q.fair
           OR EXISTS (SELECT 1 FROM {schema}.job_group AS g
                      WHERE g.queue = q.name
                        AND (g.concurrency IS NOT NULL OR g.rate_limit IS NOT NULL))
           AS flow
    FROM {schema}.queue AS q
    WHERE q.name = %(queue)s
) AS f;
