-- One page of jobs, newest first, after the cursor. Ids are UUID version 7, whose
-- leading bits are the creation time, so the primary key gives the order (custom
-- ids sort by value). Every filter is optional: NULL leaves it out.
SELECT {job_columns}
FROM {schema}.job AS j
WHERE (%(queue)s::text IS NULL OR queue = %(queue)s)
  AND (%(states)s::{schema}.job_state[] IS NULL OR state = ANY (%(states)s))
  AND (%(singleton_key)s::text IS NULL OR singleton_key = %(singleton_key)s)
  AND (%(data_contains)s::jsonb IS NULL OR data @> %(data_contains)s)
  AND (%(before_id)s::uuid IS NULL OR id < %(before_id)s)
ORDER BY id DESC
LIMIT %(limit)s;
