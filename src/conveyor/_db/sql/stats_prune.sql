-- Forgets statistics snapshots older than %(keep)s.
DELETE FROM {schema}.queue_stats WHERE taken_at < now() - %(keep)s::interval;
