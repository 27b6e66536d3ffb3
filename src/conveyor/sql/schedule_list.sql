SELECT name, queue, cron, tz, data, options, missed, next_tick, created_at, updated_at
FROM {schema}.schedule
ORDER BY name;
