-- The sample of the ANALYZE that follows a bulk insert: 300 rows per unit of the
-- statistics target, so 30 reads 9,000 rows where the default of 100 reads
-- 30,000, at a sixth of the time (docs/design-decisions.md, 31). Enough for the
-- claim's plan, which needs the queue's share of the table and little else.
-- Local to the transaction, and set back by jobs_analyze_sample_restore.sql, so a
-- caller's own ANALYZE later in the same transaction samples as it would have.
SELECT current_setting('default_statistics_target') AS previous,
       set_config('default_statistics_target',
                  least(current_setting('default_statistics_target')::int, 30)::text, true);
