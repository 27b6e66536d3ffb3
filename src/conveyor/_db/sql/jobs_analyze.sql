-- Statistics for claims right after a bulk insert (run after jobs_analyze_sample):
-- only the columns a claim filters and orders by. Autovacuum's next ANALYZE of
-- the table covers every column, indexes included.
ANALYZE {schema}.job (queue, state, priority, start_after, keep_until, group_key);
