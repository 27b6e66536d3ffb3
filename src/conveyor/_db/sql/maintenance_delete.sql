-- Deletes up to %(limit)s finished jobs whose delete_after has passed since they
-- finished, oldest first for each delete_after in use. A delete_after of 0 keeps
-- a job. A job that steps of a flow still wait on (or have yet to read the output
-- of) stays until they finish; the edges of deleted jobs go with them.
WITH RECURSIVE {finished_retentions},
doomed AS (
    SELECT d.id
    FROM retentions AS r
    CROSS JOIN LATERAL (
        SELECT j.id
        FROM {schema}.job AS j
        WHERE j.state > 'active' AND j.delete_after = r.delete_after
          AND j.completed_at <= now() - r.delete_after
          AND NOT EXISTS (
              SELECT 1 FROM {schema}.job_dependency AS d
              JOIN {schema}.job AS w ON w.id = d.job_id
              WHERE d.depends_on = j.id AND (w.state < 'completed' OR w.state = 'waiting'))
        ORDER BY j.completed_at
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) AS d
    WHERE r.delete_after > interval '0'
    LIMIT %(limit)s
),
gone AS (
    DELETE FROM {schema}.job AS j
    USING doomed
    WHERE j.id = doomed.id
    RETURNING j.id, j.has_dependencies, j.has_dependents
),
{forget_edges}
SELECT count(*)::integer AS deleted FROM gone;
