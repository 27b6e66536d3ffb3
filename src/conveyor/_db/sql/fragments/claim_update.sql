-- A shared part: makes the jobs of a CTE named chosen active for a new attempt,
-- with a lease of their expire_in or %(lease)s, whichever is shorter, or of
-- %(visibility)s when a fetch gives one (it replaces expire_in for the attempt). The statement
-- that names it adds RETURNING. The ids go in as an array, so the jobs are found
-- through the primary key whatever the planner guesses of chosen's size (a
-- generic plan would otherwise hash the whole table).
UPDATE {schema}.job AS j
SET state = 'active',
    attempt = j.attempt + 1,
    started_at = now(),
    lease_expires_at = now() + COALESCE(
        %(visibility)s::interval,
        LEAST(j.expire_in, COALESCE(%(lease)s::interval, j.expire_in)))
WHERE j.id = ANY (ARRAY(SELECT chosen.id FROM chosen))
  -- Chosen jobs are locked or (claim_flow.sql's first jobs of keys) were waiting
  -- when the statement began: one claimed since is skipped, not claimed twice.
  AND j.state < 'active'
