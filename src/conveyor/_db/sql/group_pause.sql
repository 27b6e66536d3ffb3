-- Pauses one group key of a queue: none of its jobs is claimed until %(duration)s
-- from now, or, without a duration, until it is resumed.
INSERT INTO {schema}.job_group AS g (queue, group_key, paused_until)
VALUES (%(queue)s, %(group_key)s,
        COALESCE(now() + %(duration)s::interval, '9999-12-31 00:00:00+00'))
ON CONFLICT (queue, group_key) DO UPDATE
SET paused_until = excluded.paused_until, updated_at = now()
RETURNING *;
