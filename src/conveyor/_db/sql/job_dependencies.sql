-- The jobs one job waits for, with the edges' refs and failure policies, in the
-- order of their ids: the first %(limit)s (NULL: all) after the job %(after)s
-- (NULL: from the first), read in the order of the edges' key.
SELECT {job_columns}, d.ref, d.on_failure, d.settled
FROM {schema}.job_dependency AS d
JOIN {schema}.job AS j ON j.id = d.depends_on
WHERE d.job_id = %(id)s
  AND (%(after)s::uuid IS NULL OR d.depends_on > %(after)s::uuid)
ORDER BY d.depends_on
LIMIT %(limit)s;
