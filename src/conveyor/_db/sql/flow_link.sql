-- Makes the steps of a flow that went through a queue's unique indexes (written as
-- any job) steps: each waits for %(waiting_for)s jobs ('waiting' until its count
-- reaches 0, when that is more than none), and is marked as waited for when
-- %(waited)s. Steps written straight into the job table were written so already
-- (enqueue_flow.sql).
UPDATE {schema}.job AS j
SET state = CASE WHEN s.n > 0 THEN 'waiting' ELSE j.state END::{schema}.job_state,
    waiting_for = j.waiting_for + s.n,
    has_dependencies = j.has_dependencies OR s.n > 0,
    has_dependents = j.has_dependents OR s.waited
FROM unnest(%(id)s::uuid[], %(waiting_for)s::integer[], %(waited)s::boolean[])
    AS s (id, n, waited)
WHERE j.id = ANY (%(id)s::uuid[]) AND j.id = s.id;
