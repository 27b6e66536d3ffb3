-- Active jobs whose lease lapsed (their worker died or lost the database, or a
-- fetch's consumer never finished them), with the attempt that held them: fail.sql
-- then settles each by its retry policy. A worker's rescue looks in every queue;
-- a fetch looks in its own (the lease_scope part: lease_scope_queue.sql).
SELECT id, attempt
FROM {schema}.job
WHERE state = 'active' AND lease_expires_at < now()
{lease_scope}
ORDER BY lease_expires_at
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;
