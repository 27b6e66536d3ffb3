-- Makes the waiting jobs of one queue due now, whatever their start_after or retry
-- delay (conveyor.testing: drain with include_delayed=True). Claims then take them in
-- the usual order.
UPDATE {schema}.job
SET start_after = now()
WHERE queue = %(queue)s
  AND state IN ('created', 'retry')
  AND start_after > now();
