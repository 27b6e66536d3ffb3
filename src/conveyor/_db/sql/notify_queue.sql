-- Wakes the workers of one queue (when the transaction commits).
SELECT pg_notify(%(channel)s, %(queue)s);
