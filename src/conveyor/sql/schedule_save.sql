-- Creates a schedule, or replaces every setting of the one with that name.
INSERT INTO {schema}.schedule (name, queue, cron, tz, data, options, missed, next_tick)
VALUES (%(name)s, %(queue)s, %(cron)s, %(tz)s, %(data)s::jsonb, %(options)s::jsonb,
        %(missed)s, %(next_tick)s)
ON CONFLICT (name) DO UPDATE
SET queue = excluded.queue, cron = excluded.cron, tz = excluded.tz, data = excluded.data,
    options = excluded.options, missed = excluded.missed, next_tick = excluded.next_tick,
    updated_at = now()
RETURNING name, queue, cron, tz, data, options, missed, next_tick, created_at, updated_at;
