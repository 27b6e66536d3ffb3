-- A shared part: makes the jobs of a CTE named chosen active for a new attempt,
-- with a lease of their expire_in or %(lease)s, whichever is shorter. The statement
-- that names it adds RETURNING.
UPDATE {schema}.job AS j
SET state = 'active',
    attempt = j.attempt + 1,
    started_at = now(),
    lease_expires_at = now() + LEAST(j.expire_in, COALESCE(%(lease)s::interval, j.expire_in))
FROM chosen
WHERE j.id = chosen.id
