-- The workers that announced themselves, alive first, newest first; a worker is
-- alive while its expiry has not passed.
SELECT w.id, w.host, w.pid, w.queues, w.concurrency, w.started_at, w.seen_at,
       w.expires_at > now() AS alive
FROM {schema}.worker AS w
ORDER BY w.expires_at > now() DESC, w.started_at DESC;
