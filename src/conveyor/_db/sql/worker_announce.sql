-- A worker says it is alive: its row is written, or its expiry pushed forward.
INSERT INTO {schema}.worker AS w (id, host, pid, queues, concurrency, expires_at)
VALUES (%(id)s, %(host)s, %(pid)s, %(queues)s, %(concurrency)s, now() + %(ttl)s::interval)
ON CONFLICT (id) DO UPDATE
SET seen_at = now(), expires_at = now() + %(ttl)s::interval;
