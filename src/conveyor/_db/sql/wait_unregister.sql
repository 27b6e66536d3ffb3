-- Removes one waiter of a job (the caller's, done waiting).
DELETE FROM {schema}.job_waiter
WHERE ctid = (SELECT w.ctid FROM {schema}.job_waiter AS w WHERE w.job_id = %(id)s LIMIT 1);
