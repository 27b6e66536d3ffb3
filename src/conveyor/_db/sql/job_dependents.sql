-- The jobs waiting for one job (or that waited), with the edges' refs and
-- policies, in the order of their ids: the first %(limit)s (NULL: all) after the
-- job %(after)s (NULL: from the first), read in the order of job_dependency_parent
-- (a batch's callback may wait for 100,000 jobs).
SELECT {job_columns}, d.ref, d.on_failure, d.settled
FROM {schema}.job_dependency AS d
JOIN {schema}.job AS j ON j.id = d.job_id
WHERE d.depends_on = %(id)s
  AND (%(after)s::uuid IS NULL OR d.job_id > %(after)s::uuid)
ORDER BY d.job_id
LIMIT %(limit)s;
