-- Inserts jobs sent with debounce_seconds (see enqueue.sql). A job starts after
-- its window; while it waits, a later job with the same queue and singleton key
-- replaces it (job_debounce is the arbiter): data and options become the later
-- job's, the start moves to the end of the new window, the id stays. Of the jobs
-- of one key in a batch, the last wins: input_row is the staging table's ctid,
-- in the order COPY wrote the rows (one ON CONFLICT DO UPDATE statement may not
-- touch a row twice, so a batch must not hold two jobs of a key).
WITH input AS (
    SELECT DISTINCT ON (singleton_key) * FROM {input}
    WHERE debounce_seconds IS NOT NULL
    ORDER BY singleton_key, input_row DESC
),
target AS (
    SELECT * FROM {schema}.queue WHERE name = %(queue)s
),
refusal AS (
    -- A conflict on another unique index than the arbiter would raise; only these
    -- policies have none that a new waiting job can meet. Otherwise nothing is
    -- written, and the client raises.
    SELECT policy FROM target WHERE policy NOT IN ('standard', 'singleton')
),
written AS (
    INSERT INTO {schema}.job (id, queue, start_after, keep_until, singleton_on, {enqueue_options})
    SELECT id, queue, start_after, keep_until, singleton_on, {enqueue_options}
    FROM ({enqueue_rows}) AS candidate
    WHERE NOT EXISTS (SELECT 1 FROM refusal)
    ON CONFLICT (queue, singleton_key)
        WHERE state = 'created' AND attempt = 0 AND debounce_window IS NOT NULL
    DO UPDATE SET
        start_after = EXCLUDED.start_after, keep_until = EXCLUDED.keep_until,
        policy = EXCLUDED.policy, priority = EXCLUDED.priority, data = EXCLUDED.data,
        retry_limit = EXCLUDED.retry_limit, retry_delay = EXCLUDED.retry_delay,
        retry_backoff = EXCLUDED.retry_backoff, retry_delay_max = EXCLUDED.retry_delay_max,
        expire_in = EXCLUDED.expire_in, delete_after = EXCLUDED.delete_after,
        dead_letter = EXCLUDED.dead_letter, group_key = EXCLUDED.group_key,
        debounce_window = EXCLUDED.debounce_window, trace_context = EXCLUDED.trace_context
    RETURNING id
)
{enqueue_result},
       (SELECT policy FROM refusal) AS debounce_refused_by;
