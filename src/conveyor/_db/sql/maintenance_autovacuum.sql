-- Whether autovacuum cleans the job table: on for the server and not turned off
-- for the table. Claims and completions leave two dead row versions per job, and
-- nothing else removes them.
SELECT current_setting('autovacuum') = 'on'
       AND NOT COALESCE('autovacuum_enabled=false' = ANY (c.reloptions), false) AS on
FROM pg_class AS c
WHERE c.oid = '{schema}.job'::regclass;
