-- Ends the pause of one group key.
UPDATE {schema}.job_group
SET paused_until = NULL, updated_at = now()
WHERE queue = %(queue)s AND group_key = %(group_key)s
RETURNING *;
