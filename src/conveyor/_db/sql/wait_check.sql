-- A waited-for job's state, read again after a notification or a pause (the
-- registration read it under a lock: mark_waited.sql).
SELECT j.state::text AS state FROM {schema}.job AS j WHERE j.id = %(id)s;
