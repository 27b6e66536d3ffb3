-- A shared part, the body of a recursive CTE named retentions (delete_after): the
-- distinct delete_after values of finished jobs, one descent of job_finished each
-- (a loose index scan). Statements then read finished jobs one value at a time, in
-- the order they finished.
retentions (delete_after) AS (
    SELECT min(j.delete_after) FROM {schema}.job AS j WHERE j.state > 'active'
    UNION ALL
    SELECT (SELECT min(j.delete_after) FROM {schema}.job AS j
            WHERE j.state > 'active' AND j.delete_after > r.delete_after)
    FROM retentions AS r
    WHERE r.delete_after IS NOT NULL
)
