-- The schedules with a tick due, locked for this transaction; paused ones send
-- nothing. Rows another process is ticking are skipped: once it commits, their
-- next_tick has moved on.
WITH clock AS (
    SELECT coalesce(%(now)s::timestamptz, now()) AS now
)
SELECT s.name, s.queue, s.cron, s.tz, s.data, s.options, s.missed, s.next_tick, clock.now
FROM {schema}.schedule AS s, clock
WHERE s.next_tick <= clock.now AND NOT s.paused
ORDER BY s.next_tick
FOR UPDATE OF s SKIP LOCKED;
