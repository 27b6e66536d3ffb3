-- Records the job a schedule sent last (by a tick or by hand) and when; job is
-- NULL when the queue's policy turned it away.
UPDATE {schema}.schedule SET last_tick_at = %(at)s, last_job = %(job)s::uuid
WHERE name = %(name)s;
