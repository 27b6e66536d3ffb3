-- Statistics snapshots taken in the last %(since)s, of one queue or (NULL) all,
-- oldest first.
SELECT s.queue, s.taken_at, s.created, s.scheduled, s.retry, s.active, s.completed,
       s.cancelled, s.failed, s.lag
FROM {schema}.queue_stats AS s
WHERE s.taken_at >= now() - %(since)s::interval
  AND (%(queue)s::text IS NULL OR s.queue = %(queue)s::text)
ORDER BY s.taken_at, s.queue;
