SELECT EXISTS (SELECT 1 FROM target) AS queue_found,
       (SELECT count(*) FROM written) AS inserted,
       (SELECT id FROM written LIMIT 1) AS first_id,
       -- Wakes listening workers when the transaction commits (at most one
       -- notification per statement, and none when the client debounces).
       (SELECT pg_notify(%(channel)s, %(queue)s)
        WHERE %(notify)s AND EXISTS (SELECT 1 FROM written)) AS notified
