-- Forgets waiters a process left behind when it died while waiting.
DELETE FROM {schema}.job_waiter WHERE since < now() - interval '1 day';
