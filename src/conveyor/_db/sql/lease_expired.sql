-- Active jobs whose lease lapsed (their worker died or lost the database), with
-- the attempt that held them: fail.sql then settles each by its retry policy.
SELECT id, attempt
FROM {schema}.job
WHERE state = 'active' AND lease_expires_at < now()
ORDER BY lease_expires_at
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;
