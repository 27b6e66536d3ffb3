-- Creates a schedule, or replaces every setting of the one with that name. A
-- replaced schedule stays paused if it was, and keeps its last run: application
-- start-up code may save its schedules every time.
WITH s AS (
    INSERT INTO {schema}.schedule (name, queue, cron, tz, data, options, missed, next_tick)
    VALUES (%(name)s, %(queue)s, %(cron)s, %(tz)s, %(data)s::jsonb, %(options)s::jsonb,
            %(missed)s, %(next_tick)s)
    ON CONFLICT (name) DO UPDATE
    SET queue = excluded.queue, cron = excluded.cron, tz = excluded.tz, data = excluded.data,
        options = excluded.options, missed = excluded.missed, next_tick = excluded.next_tick,
        updated_at = now()
    RETURNING *
)
SELECT {schedule_columns}
FROM s
LEFT JOIN {schema}.job AS j ON j.id = s.last_job;
