-- Held until the migrating transaction ends; other processes wait here, then find
-- the work done.
SELECT pg_advisory_xact_lock(hashtext('conveyor.migrate'), hashtext(%(schema)s));
