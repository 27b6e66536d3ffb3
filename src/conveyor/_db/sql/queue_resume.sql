-- Ends a queue's pause.
UPDATE {schema}.queue
SET paused_until = NULL, updated_at = now()
WHERE name = %(name)s
RETURNING *;
