-- Claims up to %(limit)s due jobs of a queue under flow control: its rate limit,
-- and per group key a concurrency limit, a rate limit and pauses; keys are served
-- in turn (fairly). Runs right after claim_flow_lock.sql in one transaction, so
-- the claims of one queue see each other's counts and share one key cursor.
--
-- The rules:
-- - nothing is claimed while the queue is paused; nothing of a key while it is;
-- - a key may have at most its concurrency limit of jobs active (the key's own
--   setting in job_group, else the queue's group_concurrency);
-- - at most rate_limit jobs of the queue start in each fixed window of
--   rate_period (windows start at multiples of the period since the Unix epoch),
--   and likewise per key with group_rate_limit / group_rate_period;
-- - fairness: keys take turns. A claim visits the keys with due jobs in key
--   order, starting after the key where the last claim of the queue stopped
--   (flow_cursor) and wrapping around. Each key offers its first jobs (priority,
--   then the longest waiting), up to its budget and a quantum: a tenth of the
--   claim, no more than the queue's per-key limits, at least one. The claim
--   visits enough keys to fill itself at a quantum each (plus 8, at most 1,000);
--   when that is every key, each offers an even share instead. It takes every
--   visited key's first job before any key's second, in visiting order. Jobs
--   without a group key count as one more key, visited first; they are looked for
--   only when %(unkeyed)s says some may be waiting (queue_flow.sql).
WITH RECURSIVE settings AS (
    SELECT q.name, q.rate_limit, q.group_concurrency, q.group_rate_limit, q.group_rate_period,
           {schema}.window_start(q.rate_period) AS window_start,
           COALESCE(c.group_key, '') AS cursor, v.quantum,
           LEAST(1000, ceil(%(limit)s::numeric / v.quantum)::integer + 8) AS visits
    FROM {schema}.queue AS q
    CROSS JOIN LATERAL (
        SELECT GREATEST(1, LEAST(ceil(%(limit)s / 10.0)::integer,
                                 q.group_concurrency, q.group_rate_limit)) AS quantum
    ) AS v
    LEFT JOIN {schema}.flow_cursor AS c ON c.queue = q.name
    WHERE q.name = %(queue)s AND (q.paused_until IS NULL OR q.paused_until <= now())
),
queue_budget AS (
    SELECT LEAST(%(limit)s, s.rate_limit - COALESCE(w.started, 0)) AS n
    FROM settings AS s
    LEFT JOIN {schema}.rate_window AS w
        ON w.queue = s.name AND NOT w.per_group AND w.group_key = ''
       AND w.window_start = s.window_start
),
-- The group keys with due jobs after the cursor, each with its first due job
-- (priority, then the longest waiting): one index descent per key (a loose index
-- scan of job_group_claim). A key at or before the cursor is reached by wrapping
-- around. The first jobs are not locked here (a recursive query cannot lock); the
-- UPDATE re-checks that they still wait.
keys (group_key, id, priority, start_after, depth, wrapped) AS (
    -- The walk starts at the cursor (depth 0, not a key to serve).
    SELECT s.cursor, NULL::uuid, NULL::integer, NULL::timestamptz, 0, false
    FROM settings AS s
    UNION ALL
    SELECT n.group_key, n.id, n.priority, n.start_after, k.depth + 1,
           k.wrapped OR n.group_key <= k.group_key
    FROM keys AS k
    CROSS JOIN settings AS s
    CROSS JOIN LATERAL (
        (SELECT j.group_key, j.id, j.priority, j.start_after FROM {schema}.job AS j
         WHERE j.queue = %(queue)s AND j.state < 'active' AND j.group_key > k.group_key
           AND j.start_after <= now() AND j.keep_until > now()
         ORDER BY j.group_key, j.priority DESC, j.start_after, j.id LIMIT 1)
        UNION ALL
        (SELECT j.group_key, j.id, j.priority, j.start_after FROM {schema}.job AS j
         WHERE NOT k.wrapped
           AND j.queue = %(queue)s AND j.state < 'active' AND j.group_key > ''
           AND j.start_after <= now() AND j.keep_until > now()
         ORDER BY j.group_key, j.priority DESC, j.start_after, j.id LIMIT 1)
        LIMIT 1
    ) AS n
    WHERE k.depth < s.visits
      -- Past the cursor again: every key has had its turn.
      AND NOT (n.group_key > s.cursor AND (k.wrapped OR n.group_key <= k.group_key))
),
-- Active jobs per key, counted once (only keys with a concurrency limit need them).
active AS (
    SELECT a.group_key, count(*) AS n
    FROM {schema}.job AS a
    WHERE a.queue = %(queue)s AND a.state = 'active' AND a.group_key IS NOT NULL
    GROUP BY a.group_key
),
key_budget AS (
    SELECT k.group_key, k.id, k.priority, k.start_after, k.depth,
           LEAST(
               COALESCE(g.concurrency, s.group_concurrency) - COALESCE(a.n, 0),
               COALESCE(g.rate_limit, s.group_rate_limit) - COALESCE(w.started, 0)
           ) AS n,
           {schema}.window_start(COALESCE(g.rate_period, s.group_rate_period))
               AS window_start,
           COALESCE(g.rate_limit, s.group_rate_limit) IS NOT NULL AS rate_limited
    FROM keys AS k
    CROSS JOIN settings AS s
    LEFT JOIN {schema}.job_group AS g ON g.queue = %(queue)s AND g.group_key = k.group_key
    LEFT JOIN active AS a ON a.group_key = k.group_key
    LEFT JOIN {schema}.rate_window AS w
        ON w.queue = %(queue)s AND w.per_group AND w.group_key = k.group_key
       AND w.window_start = {schema}.window_start(COALESCE(g.rate_period, s.group_rate_period))
    WHERE k.depth > 0 AND (g.paused_until IS NULL OR g.paused_until <= now())
),
-- Each key offers at most its budget and a quantum; when the claim visited every
-- key with due jobs, a little over an even split of the claim if that is more.
share AS (
    SELECT CASE WHEN count(b.group_key) < min(s.visits)
                THEN GREATEST(min(s.quantum),
                              ceil(%(limit)s::numeric / (count(b.group_key) + 1))::integer + 1)
                ELSE min(s.quantum) END AS n
    FROM settings AS s LEFT JOIN key_budget AS b ON true
),
candidate AS (
    -- Each key's first due job, found by the walk.
    SELECT b.id, b.group_key, b.depth, b.priority, b.start_after
    FROM key_budget AS b
    WHERE b.n IS NULL OR b.n > 0
    UNION ALL
    -- Its next ones, for keys whose budget and share allow more than one.
    SELECT c.id, c.group_key, b.depth, c.priority, c.start_after
    FROM key_budget AS b
    CROSS JOIN share
    CROSS JOIN LATERAL (
        SELECT j.id, j.group_key, j.priority, j.start_after
        FROM {schema}.job AS j
        WHERE j.queue = %(queue)s AND j.group_key = b.group_key AND j.id <> b.id
          AND j.state < 'active' AND j.start_after <= now() AND j.keep_until > now()
        ORDER BY j.priority DESC, j.start_after, j.id
        LIMIT LEAST(COALESCE(b.n, share.n), share.n) - 1
        FOR UPDATE SKIP LOCKED
    ) AS c
    WHERE share.n > 1 AND (b.n IS NULL OR b.n > 1)
    UNION ALL
    SELECT u.id, u.group_key, 0, u.priority, u.start_after
    FROM (
        SELECT j.id, j.group_key, j.priority, j.start_after
        FROM {schema}.job AS j
        WHERE %(unkeyed)s AND j.queue = %(queue)s AND j.group_key IS NULL
          AND j.state < 'active' AND j.start_after <= now() AND j.keep_until > now()
        ORDER BY j.priority DESC, j.start_after, j.id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) AS u
),
chosen AS (
    SELECT r.id, r.group_key, r.depth
    FROM (
        SELECT c.*, row_number() OVER (
            PARTITION BY c.group_key ORDER BY c.priority DESC, c.start_after, c.id
        ) AS key_rank
        FROM candidate AS c
    ) AS r
    ORDER BY r.key_rank, r.depth
    -- No row in queue_budget: the queue is paused (or gone); claim nothing.
    LIMIT (SELECT GREATEST(0, COALESCE(min(n), 0)) FROM queue_budget)
),
claimed AS (
    {claim_update}
    RETURNING
        {job_columns}
),
counted AS (
    -- The starts of this claim, in the windows of the limits that count them.
    INSERT INTO {schema}.rate_window AS w (queue, per_group, group_key, window_start, started)
    SELECT %(queue)s, false, '', s.window_start, (SELECT count(*) FROM claimed)
    FROM settings AS s
    WHERE s.rate_limit IS NOT NULL
    UNION ALL
    SELECT %(queue)s, true, b.group_key, b.window_start, count(*)
    FROM claimed AS c JOIN key_budget AS b ON b.group_key = c.group_key
    WHERE b.rate_limited
    GROUP BY b.group_key, b.window_start
    ON CONFLICT (queue, per_group, group_key) DO UPDATE
    SET started = CASE WHEN w.window_start = excluded.window_start
                       THEN w.started + excluded.started ELSE excluded.started END,
        window_start = excluded.window_start
),
moved AS (
    -- The next claim starts after the last key served: after the last key this
    -- claim took a job from when it filled up, else after the last key visited.
    INSERT INTO {schema}.flow_cursor AS f (queue, group_key)
    SELECT %(queue)s, t.group_key
    FROM (
        SELECT CASE WHEN (SELECT count(*) FROM chosen) >= %(limit)s
                    THEN (SELECT c.group_key FROM chosen AS c WHERE c.group_key IS NOT NULL
                          ORDER BY c.depth DESC LIMIT 1)
                    ELSE (SELECT k.group_key FROM keys AS k WHERE k.depth > 0
                          ORDER BY k.depth DESC LIMIT 1)
               END AS group_key
    ) AS t
    WHERE t.group_key IS NOT NULL
    ON CONFLICT (queue) DO UPDATE SET group_key = excluded.group_key
)
SELECT * FROM claimed;  -- in the claim's order on the client, as claim.sql
