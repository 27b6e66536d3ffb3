-- Pauses a schedule: the tick skips it until it is resumed.
WITH s AS (
    UPDATE {schema}.schedule SET paused = true, updated_at = now()
    WHERE name = %(name)s
    RETURNING *
)
SELECT {schedule_columns}
FROM s
LEFT JOIN {schema}.job AS j ON j.id = s.last_job;
