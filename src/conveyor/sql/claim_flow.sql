-- Claims up to %(limit)s due jobs of a queue under flow control: its rate limit,
-- and per group key a concurrency limit, a rate limit and pauses; keys are served
-- in turn (fairly). Runs right after claim_flow_lock.sql in one transaction, so
-- the claims of one queue see each other's counts.
--
-- The rules:
-- - nothing is claimed while the queue is paused; nothing of a key while it is;
-- - a key may have at most its concurrency limit of jobs active (the key's own
--   setting in job_group, else the queue's group_concurrency);
-- - at most rate_limit jobs of the queue start in each fixed window of
--   rate_period (windows start at multiples of the period since the Unix epoch),
--   and likewise per key with group_rate_limit / group_rate_period;
-- - fairness: each key offers its first jobs (priority, then the longest waiting),
--   and the claim takes every key's first job before any key's second. Jobs
--   without a group key count as one more key. At most 1,000 keys take part in a
--   claim, in key order.
WITH RECURSIVE settings AS (
    SELECT q.name, q.rate_limit, q.group_concurrency, q.group_rate_limit, q.group_rate_period,
           {schema}.window_start(q.rate_period) AS window_start
    FROM {schema}.queue AS q
    WHERE q.name = %(queue)s AND (q.paused_until IS NULL OR q.paused_until <= now())
),
queue_budget AS (
    SELECT LEAST(%(limit)s, s.rate_limit - COALESCE(w.started, 0)) AS n
    FROM settings AS s
    LEFT JOIN {schema}.rate_window AS w
        ON w.queue = s.name AND NOT w.per_group AND w.group_key = ''
       AND w.window_start = s.window_start
),
-- The group keys with waiting jobs, one index probe each (a loose index scan).
keys (group_key, depth) AS (
    SELECT min(j.group_key), 1 FROM {schema}.job AS j
    WHERE j.queue = %(queue)s AND j.state < 'active' AND j.group_key IS NOT NULL
    UNION ALL
    SELECT (SELECT min(j.group_key) FROM {schema}.job AS j
            WHERE j.queue = %(queue)s AND j.state < 'active' AND j.group_key > k.group_key),
           k.depth + 1
    FROM keys AS k
    WHERE k.group_key IS NOT NULL AND k.depth < 1000
),
key_budget AS (
    SELECT k.group_key,
           LEAST(
               COALESCE(g.concurrency, s.group_concurrency) - (
                   SELECT count(*) FROM {schema}.job AS a
                   WHERE a.queue = %(queue)s AND a.group_key = k.group_key
                     AND a.state = 'active'),
               COALESCE(g.rate_limit, s.group_rate_limit) - COALESCE((
                   SELECT w.started FROM {schema}.rate_window AS w
                   WHERE w.queue = %(queue)s AND w.per_group AND w.group_key = k.group_key
                     AND w.window_start = {schema}.window_start(
                         COALESCE(g.rate_period, s.group_rate_period))), 0)
           ) AS n,
           {schema}.window_start(COALESCE(g.rate_period, s.group_rate_period))
               AS window_start,
           COALESCE(g.rate_limit, s.group_rate_limit) IS NOT NULL AS rate_limited
    FROM keys AS k
    CROSS JOIN settings AS s
    LEFT JOIN {schema}.job_group AS g ON g.queue = %(queue)s AND g.group_key = k.group_key
    WHERE k.group_key IS NOT NULL
      AND (g.paused_until IS NULL OR g.paused_until <= now())
),
-- Each key offers at most its budget, and no more than twice its fair share.
share AS (
    SELECT GREATEST(1, 2 * ceil(%(limit)s::numeric / (count(*) + 1)))::integer AS n
    FROM key_budget
),
candidate AS (
    SELECT c.id, c.group_key, c.priority, c.start_after
    FROM key_budget AS b
    CROSS JOIN share
    CROSS JOIN LATERAL (
        SELECT j.id, j.group_key, j.priority, j.start_after
        FROM {schema}.job AS j
        WHERE j.queue = %(queue)s AND j.group_key = b.group_key
          AND j.state < 'active' AND j.start_after <= now() AND j.keep_until > now()
        ORDER BY j.priority DESC, j.start_after, j.id
        LIMIT LEAST(COALESCE(b.n, share.n), share.n)
        FOR UPDATE SKIP LOCKED
    ) AS c
    WHERE b.n IS NULL OR b.n > 0
    UNION ALL
    SELECT u.id, u.group_key, u.priority, u.start_after
    FROM (
        SELECT j.id, j.group_key, j.priority, j.start_after
        FROM {schema}.job AS j
        WHERE j.queue = %(queue)s AND j.group_key IS NULL
          AND j.state < 'active' AND j.start_after <= now() AND j.keep_until > now()
        ORDER BY j.priority DESC, j.start_after, j.id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) AS u
),
chosen AS (
    SELECT r.id, r.group_key
    FROM (
        SELECT c.*, row_number() OVER (
            PARTITION BY c.group_key ORDER BY c.priority DESC, c.start_after, c.id
        ) AS key_rank
        FROM candidate AS c
    ) AS r
    ORDER BY r.key_rank, r.priority DESC, r.start_after, r.id
    -- No row in queue_budget: the queue is paused (or gone); claim nothing.
    LIMIT (SELECT GREATEST(0, COALESCE(min(n), 0)) FROM queue_budget)
),
claimed AS (
    {claim_update}
    RETURNING {job_columns}
),
counted AS (
    -- The starts of this claim, in the windows of the limits that count them.
    INSERT INTO {schema}.rate_window AS w (queue, per_group, group_key, window_start, started)
    SELECT %(queue)s, false, '', s.window_start, (SELECT count(*) FROM chosen)
    FROM settings AS s
    WHERE s.rate_limit IS NOT NULL
    UNION ALL
    SELECT %(queue)s, true, b.group_key, b.window_start, count(*)
    FROM chosen AS c JOIN key_budget AS b ON b.group_key = c.group_key
    WHERE b.rate_limited
    GROUP BY b.group_key, b.window_start
    ON CONFLICT (queue, per_group, group_key) DO UPDATE
    SET started = CASE WHEN w.window_start = excluded.window_start
                       THEN w.started + excluded.started ELSE excluded.started END,
        window_start = excluded.window_start
)
SELECT * FROM claimed;
