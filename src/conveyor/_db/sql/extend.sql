-- A fetch's consumer extends the leases of its attempts: each ends %(lease)s from
-- now, while the attempt still holds its job (fenced as complete.sql is). Returns
-- the jobs extended.
UPDATE {schema}.job AS j
SET lease_expires_at = now() + %(lease)s::interval
FROM unnest(%(id)s::uuid[], %(attempt)s::integer[]) AS i (id, attempt)
WHERE j.id = ANY (%(id)s::uuid[]) AND j.id = i.id AND j.attempt = i.attempt
  AND j.state = 'active'
RETURNING j.id;
