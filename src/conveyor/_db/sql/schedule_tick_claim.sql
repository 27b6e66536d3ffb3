-- Records a tick as enqueued; no row comes back when it already was.
INSERT INTO {schema}.schedule_tick (schedule, tick)
VALUES (%(name)s, %(tick)s)
ON CONFLICT (schedule, tick) DO NOTHING
RETURNING tick;
