-- Deletes up to %(limit)s finished jobs whose delete_after has passed since they
-- finished, oldest first for each delete_after in use. A delete_after of 0 keeps
-- a job.
WITH RECURSIVE {finished_retentions},
doomed AS (
    SELECT d.id
    FROM retentions AS r
    CROSS JOIN LATERAL (
        SELECT j.id
        FROM {schema}.job AS j
        WHERE j.state > 'active' AND j.delete_after = r.delete_after
          AND j.completed_at <= now() - r.delete_after
        ORDER BY j.completed_at
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) AS d
    WHERE r.delete_after > interval '0'
    LIMIT %(limit)s
)
DELETE FROM {schema}.job AS j
USING doomed
WHERE j.id = doomed.id;
