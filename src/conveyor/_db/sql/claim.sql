-- Claims up to %(limit)s due jobs of one queue: highest priority first, then the
-- longest waiting. Queues with limits or fairness use claim_flow.sql instead. The
-- lease runs for the job's expire_in, or for %(lease)s when a worker that renews
-- leases by heartbeat asks for a shorter one.
-- The CTE is also an optimisation fence, so the UPDATE touches no more rows than
-- the LIMIT allows.
--
-- For the 'singleton' and 'stately' policies at most one job per key may be active:
-- such a job is taken only when no job of its key is active, one per key per claim,
-- retrying jobs before new ones. A 'stately' key with a job waiting in 'retry'
-- starts no new job, so a failing job always finds its 'retry' slot free.
WITH candidate AS (
    SELECT j.id, j.policy, j.state, COALESCE(j.singleton_key, '') AS key, j.priority,
           j.start_after
    FROM {schema}.job AS j
    WHERE j.queue = %(queue)s
      AND j.state < 'active'
      AND j.start_after <= now()
      AND j.keep_until > now()
      -- Pauses (flow control): none of a paused queue, none of a paused key.
      AND NOT EXISTS (SELECT 1 FROM {schema}.queue AS q
                      WHERE q.name = %(queue)s AND q.paused_until > now())
      AND (j.group_key IS NULL OR NOT EXISTS (
          SELECT 1 FROM {schema}.job_group AS g
          WHERE g.queue = %(queue)s AND g.group_key = j.group_key AND g.paused_until > now()))
    ORDER BY j.priority DESC, j.start_after, j.id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
ranked AS (
    SELECT c.*, row_number() OVER (
        PARTITION BY c.key ORDER BY c.state DESC, c.priority DESC, c.start_after, c.id
    ) AS key_rank
    FROM candidate AS c
),
chosen AS (
    SELECT r.id
    FROM ranked AS r
    WHERE r.policy NOT IN ('singleton', 'stately')
       OR (r.key_rank = 1
           AND NOT EXISTS (
               SELECT 1 FROM {schema}.job AS a
               WHERE a.queue = %(queue)s AND a.state = 'active' AND a.policy = r.policy
                 AND COALESCE(a.singleton_key, '') = r.key)
           AND (r.policy = 'singleton' OR r.state = 'retry' OR NOT EXISTS (
               SELECT 1 FROM {schema}.job AS w
               WHERE w.queue = %(queue)s AND w.state = 'retry' AND w.policy = 'stately'
                 AND COALESCE(w.singleton_key, '') = r.key)))
)
-- The rows come back in the order the UPDATE met them; the client puts them in the
-- claim's order (conveyor._rows.in_claim_order), which costs it a fraction of what
-- sorting 500 whole rows here costs the server.
{claim_update}
RETURNING
    {job_columns};
