-- Resumes a schedule from %(next_tick)s, the first tick after now: the ticks it
-- missed while paused send nothing. A schedule that was not paused keeps its
-- next tick, which may be due and not sent yet.
WITH s AS (
    UPDATE {schema}.schedule
    SET next_tick = CASE WHEN paused THEN %(next_tick)s ELSE next_tick END,
        paused = false, updated_at = now()
    WHERE name = %(name)s
    RETURNING *
)
SELECT {schedule_columns}
FROM s
LEFT JOIN {schema}.job AS j ON j.id = s.last_job;
