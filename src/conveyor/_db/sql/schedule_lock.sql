-- One schedule, locked for this transaction (resuming it, running it by hand),
-- with the database's clock. A tick running at the same time skips it (SKIP
-- LOCKED) and sends its due ticks the next time.
SELECT name, queue, cron, tz, data, options, now() AS now
FROM {schema}.schedule
WHERE name = %(name)s
FOR UPDATE;
