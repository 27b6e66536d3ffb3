-- Settles what waits for jobs that just finished (%(ids)s; ids of jobs still
-- unfinished are ignored), in the transaction that finished them, as a statement
-- of its own: its snapshot is taken after that transaction locked the jobs, so it
-- sees every dependency added while they ran (mark_waited.sql). With %(removing)s
-- the jobs are about to be deleted, and count as cancelled unless they completed.
--
-- Each edge is settled once. A completed dependency, or a failed or cancelled one
-- whose edge says 'ignore', counts down its dependent's waiting_for; at 0 the
-- dependent is due (released), unless its queue's policy could turn it away
-- ('short', 'stately', 'exclusive'): then it stays waiting, held, until
-- release_held.sql finds its key free. A failed or cancelled dependency whose edge
-- says 'cancel' or 'fail' ends its waiting dependent so, and the ending goes on
-- through that job's own dependents, edge by edge ('fail' wins over 'cancel').
-- Callers of wait_for on the finished jobs are notified (a waiter marks its job).
--
-- It runs after completions of jobs marked as waited for (has_dependents: a
-- worker completes unmarked jobs without it), and after every other operation that
-- finishes jobs, so every step is led by ids: the finished jobs are read by their
-- key, those not marked go no further, and each step after goes through an index
-- whatever the planner guesses of the CTEs' sizes: the LATERAL subqueries end in
-- OFFSET 0 so that they stay probes per row instead of being flattened into joins
-- the planner may hash over a whole table, a job's state is read by a subquery on
-- its key, the UPDATEs find their rows through = ANY (ARRAY(...)), as
-- claim_update.sql does, and no condition on a job's state sits beside its id
-- (the planner, with statistics from before the jobs finished, would read all
-- finished jobs through job_finished instead of probing the key).
WITH RECURSIVE parent_rows AS MATERIALIZED (
    SELECT p.id, p.state
    FROM unnest(%(ids)s::uuid[]) AS i (id)
    CROSS JOIN LATERAL (
        SELECT j.id, j.state, j.has_dependents FROM {schema}.job AS j WHERE j.id = i.id OFFSET 0
    ) AS p
    WHERE p.has_dependents
),
finished AS MATERIALIZED (
    SELECT r.id,
           CASE WHEN r.state IN ('completed', 'failed', 'cancelled') THEN r.state::text
                ELSE 'cancelled' END AS state
    FROM parent_rows AS r
    WHERE %(removing)s OR r.state IN ('completed', 'failed', 'cancelled')
),
doomed (id, on_failure, cause) AS (
    -- From the jobs that failed or were cancelled (no cause: verdict leaves out the
    -- finished jobs), edge by edge through the waiting jobs that depend on them.
    SELECT f.id, NULL::text, NULL::uuid
    FROM finished AS f
    WHERE f.state <> 'completed'
    UNION
    SELECT e.job_id, e.on_failure, x.id
    FROM doomed AS x
    CROSS JOIN LATERAL (
        SELECT d.job_id, d.on_failure
        FROM {schema}.job_dependency AS d
        WHERE d.depends_on = x.id AND NOT d.settled AND d.on_failure <> 'ignore'
        OFFSET 0
    ) AS e
    WHERE (SELECT w.state FROM {schema}.job AS w WHERE w.id = e.job_id) = 'waiting'
),
verdict AS MATERIALIZED (
    -- A job that finished itself (one of %(ids)s) is not ended again.
    SELECT DISTINCT ON (x.id) x.id, x.cause,
           CASE WHEN x.on_failure = 'fail' THEN 'failed' ELSE 'cancelled' END AS state
    FROM doomed AS x
    WHERE NOT EXISTS (SELECT 1 FROM finished AS f WHERE f.id = x.id)
    ORDER BY x.id, x.on_failure = 'fail' DESC, x.cause
),
ended AS MATERIALIZED (
    SELECT f.id, f.state FROM finished AS f
    UNION ALL
    SELECT v.id, v.state FROM verdict AS v
),
settled AS (
    UPDATE {schema}.job_dependency AS d
    SET settled = true
    WHERE d.depends_on = ANY (ARRAY(SELECT ended.id FROM ended)) AND NOT d.settled
    RETURNING d.job_id
),
counts AS MATERIALIZED (
    SELECT s.job_id, count(*)::integer AS n FROM settled AS s GROUP BY s.job_id
),
-- What the UPDATEs below read per job, as maps by id (text): the edges settled per
-- dependent, and each ended dependent's state and error. A join of the job table
-- with a CTE, whose size the planner cannot know, may become a loop over every
-- pair (a second per batch of a thousand); a key looked up in a map costs the
-- same whatever the plan.
maps AS MATERIALIZED (
    SELECT COALESCE((SELECT jsonb_object_agg(c.job_id::text, c.n) FROM counts AS c), '{{}}')
               AS counts,
           COALESCE((SELECT jsonb_object_agg(v.id::text, jsonb_build_object(
                         'state', v.state,
                         'error', jsonb_build_object(
                             'type', 'dependency',
                             'message', format('dependency %%s ended %%s', v.cause,
                                               e.states ->> v.cause::text),
                             'dependency', v.cause::text, 'failed_at', now())))
                     FROM verdict AS v), '{{}}') AS verdicts
    FROM (SELECT jsonb_object_agg(ended.id::text, ended.state) AS states FROM ended) AS e
),
doom AS (
    UPDATE {schema}.job AS j
    SET state = (m.verdicts -> j.id::text ->> 'state')::{schema}.job_state,
        completed_at = now(),
        waiting_for = j.waiting_for - COALESCE((m.counts ->> j.id::text)::integer, 0),
        error = m.verdicts -> j.id::text -> 'error',
        errors = j.errors || jsonb_build_array(m.verdicts -> j.id::text -> 'error')
    FROM maps AS m
    WHERE j.id = ANY (ARRAY(SELECT verdict.id FROM verdict)) AND j.state = 'waiting'
    RETURNING j.id
),
counted AS (
    -- n: the edges of job j settled here, (m.counts ->> j.id::text)::integer.
    UPDATE {schema}.job AS j
    SET waiting_for = j.waiting_for - (m.counts ->> j.id::text)::integer,
        state = CASE WHEN j.state = 'waiting'
                          AND j.waiting_for = (m.counts ->> j.id::text)::integer
                          AND j.policy IN ('standard', 'singleton')
                     THEN 'created' ELSE j.state END::{schema}.job_state,
        start_after = CASE WHEN j.state = 'waiting'
                                AND j.waiting_for = (m.counts ->> j.id::text)::integer
                           THEN greatest(j.start_after, now()) ELSE j.start_after END,
        keep_until = CASE WHEN j.state = 'waiting'
                               AND j.waiting_for = (m.counts ->> j.id::text)::integer
                          THEN greatest(j.start_after, now()) + (j.keep_until - j.start_after)
                          ELSE j.keep_until END
    FROM maps AS m
    WHERE j.id = ANY (ARRAY(SELECT counts.job_id FROM counts, maps
                            WHERE NOT maps.verdicts ? counts.job_id::text))
    RETURNING j.id, j.queue, j.state, j.start_after, j.waiting_for
)
SELECT
    (SELECT count(*) FROM counted WHERE state = 'created')::integer AS released,
    (SELECT count(*) FROM doom)::integer AS ended,
    (SELECT count(*) FROM counted WHERE state = 'waiting' AND waiting_for = 0)::integer AS held,
    (SELECT count(pg_notify(%(channel)s, due.queue))
     FROM (SELECT DISTINCT queue FROM counted
           WHERE state = 'created' AND start_after <= now()) AS due) AS notified,
    (SELECT count(pg_notify(%(channel)s || '.finished', w.job_id::text))
     FROM (SELECT DISTINCT w.job_id FROM {schema}.job_waiter AS w
           WHERE w.job_id = ANY (ARRAY(SELECT f.id FROM finished AS f)
                                 || ARRAY(SELECT doom.id FROM doom))) AS w
    ) AS woke;
