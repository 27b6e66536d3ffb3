-- A shared part, a CTE named live: per queue, its waiting jobs (created and due,
-- retry), the created jobs due later (scheduled) and the active jobs, through their
-- own partial indexes, and the start of its oldest due job.
live AS (
    SELECT w.queue, sum(w.created) AS created, sum(w.scheduled) AS scheduled,
           sum(w.retry) AS retry, sum(w.active) AS active, min(w.oldest_due) AS oldest_due
    FROM (
        SELECT j.queue,
               count(*) FILTER (WHERE j.state = 'created' AND j.start_after <= now()) AS created,
               count(*) FILTER (WHERE j.state = 'created' AND j.start_after > now()) AS scheduled,
               count(*) FILTER (WHERE j.state = 'retry') AS retry,
               0 AS active,
               min(j.start_after) FILTER (WHERE j.start_after <= now()) AS oldest_due
        FROM {schema}.job AS j
        WHERE j.state < 'active'
        GROUP BY j.queue
        UNION ALL
        SELECT j.queue, 0, 0, 0, count(*), NULL
        FROM {schema}.job AS j
        WHERE j.state = 'active'
        GROUP BY j.queue
    ) AS w
    GROUP BY w.queue
)
