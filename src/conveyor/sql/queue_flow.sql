-- Whether claims of a queue go through claim_flow.sql: it has a limit, is fair,
-- or has keys with settings of their own.
SELECT q.rate_limit IS NOT NULL OR q.group_concurrency IS NOT NULL
       OR q.group_rate_limit IS NOT NULL OR q.fair
       OR EXISTS (SELECT 1 FROM {schema}.job_group AS g
                  WHERE g.queue = q.name
                    AND (g.concurrency IS NOT NULL OR g.rate_limit IS NOT NULL))
       AS flow
FROM {schema}.queue AS q
WHERE q.name = %(queue)s;
