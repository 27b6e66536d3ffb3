-- Pauses a queue: no job of it is claimed until %(duration)s from now, or, without
-- a duration, until it is resumed (stored as the last day of year 9999).
UPDATE {schema}.queue
SET paused_until = COALESCE(now() + %(duration)s::interval, '9999-12-31 00:00:00+00'),
    updated_at = now()
WHERE name = %(name)s
RETURNING *;
