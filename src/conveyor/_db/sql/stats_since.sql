-- When the previous statistics snapshot was taken (or %(interval)s ago when none was).
SELECT COALESCE(max(s.taken_at), now() - %(interval)s::interval) AS since
FROM {schema}.queue_stats AS s;
