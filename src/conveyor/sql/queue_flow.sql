-- Whether claims of a queue go through claim_flow.sql (flow): it has a limit, is
-- fair, or has keys with settings of their own. For such a queue, whether due jobs
-- without a group key wait (unkeyed): finding them takes a scan of the queue's
-- waiting jobs, which claims skip while there are none.
SELECT f.flow,
       CASE WHEN f.flow THEN EXISTS (
           SELECT 1 FROM {schema}.job AS j
           WHERE j.queue = f.name AND j.state < 'active' AND j.group_key IS NULL
             AND j.start_after <= now())
       ELSE false END AS unkeyed
FROM (
    SELECT q.name,
           q.rate_limit IS NOT NULL OR q.group_concurrency IS NOT NULL
           OR q.group_rate_limit IS NOT NULL OR q.fair
           OR EXISTS (SELECT 1 FROM {schema}.job_group AS g
                      WHERE g.queue = q.name
                        AND (g.concurrency IS NOT NULL OR g.rate_limit IS NOT NULL))
           AS flow
    FROM {schema}.queue AS q
    WHERE q.name = %(queue)s
) AS f;
