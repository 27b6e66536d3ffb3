-- A shared part: the job list's filters on a job j, each left out when NULL.
-- %(key)s matches the singleton key or the group key; %(search)s is an ILIKE
-- pattern matched against the data, the output and the error, and %(search_id)s
-- the same search read as an id; %(source_id)s finds a job's dead-letter copies;
-- %(scheduled)s true keeps the jobs waiting for a later start, false the others.
(%(queue)s::text IS NULL OR j.queue = %(queue)s)
AND (%(states)s::{schema}.job_state[] IS NULL OR j.state = ANY (%(states)s))
AND (%(singleton_key)s::text IS NULL OR j.singleton_key = %(singleton_key)s)
AND (%(key)s::text IS NULL OR j.singleton_key = %(key)s OR j.group_key = %(key)s)
AND (%(data_contains)s::jsonb IS NULL OR j.data @> %(data_contains)s)
AND (%(source_id)s::uuid IS NULL OR j.source_id = %(source_id)s)
AND (%(scheduled)s::boolean IS NULL
     OR (j.state < 'active' AND j.start_after > now()) = %(scheduled)s)
AND (%(search)s::text IS NULL OR j.id = %(search_id)s::uuid
     OR j.data::text ILIKE %(search)s OR j.output::text ILIKE %(search)s
     OR j.error::text ILIKE %(search)s)
AND (%(before_id)s::uuid IS NULL OR j.id < %(before_id)s)
