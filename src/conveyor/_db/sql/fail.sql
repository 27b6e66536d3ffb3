-- Records failed attempts of active jobs (fenced by attempt, and with %(unwaited)s
-- skipping jobs marked as waited for, as in complete.sql).
-- While retries remain, and the failure is not final, the job goes to 'retry'
-- after a delay: the caller's retry_after, else the exponential backoff (half
-- fixed, half random, capped by retry_delay_max), else retry_delay. Otherwise it
-- fails for good, and a copy goes to its dead-letter queue, which is created if it
-- does not exist. Each error is kept with the attempt it ended and when.
WITH input AS (
    SELECT i.*, j.retry_count < j.retry_limit AND NOT i.final AS retrying,
           i.error || jsonb_build_object('attempt', j.attempt, 'failed_at', now()) AS record
    FROM unnest(%(id)b::uuid[], %(attempt)b::integer[], %(error)b::jsonb[],
                %(retry_after)b::interval[], %(final)b::boolean[], %(progress)b::jsonb[])
        AS i (id, attempt, error, retry_after, final, progress)
    JOIN {schema}.job AS j ON j.id = i.id
),
failed AS (
    UPDATE {schema}.job AS j
    SET state = CASE WHEN i.retrying THEN 'retry' ELSE 'failed' END::{schema}.job_state,
        retry_count = CASE WHEN i.retrying THEN j.retry_count + 1 ELSE j.retry_count END,
        start_after = CASE
            WHEN NOT i.retrying THEN j.start_after
            WHEN i.retry_after IS NOT NULL THEN now() + i.retry_after
            WHEN j.retry_backoff THEN now() + LEAST(
                greatest(j.retry_delay, interval '1 second') * power(2, j.retry_count)
                    * (0.5 + random() / 2),
                COALESCE(j.retry_delay_max, interval '100 years'))
            ELSE now() + j.retry_delay
        END,
        completed_at = CASE WHEN i.retrying THEN NULL ELSE now() END,
        error = i.record,
        errors = j.errors || jsonb_build_array(i.record),
        progress = COALESCE(i.progress, j.progress),
        lease_expires_at = NULL
    FROM input AS i
    WHERE j.id = i.id
      AND j.state = 'active'
      AND (i.attempt IS NULL OR j.attempt = i.attempt)
      AND NOT (%(unwaited)s AND j.has_dependents)
    RETURNING j.*
),
dead AS (
    SELECT * FROM failed WHERE state = 'failed' AND dead_letter IS NOT NULL
),
dead_letter_queue AS (
    INSERT INTO {schema}.queue (name)
    SELECT DISTINCT dead_letter FROM dead
    ON CONFLICT (name) DO NOTHING
),
dead_letter_copy AS (
    -- The copy takes the dead-letter queue's defaults, or the failed job's own
    -- settings when that queue is new. It keeps the job's group key and trace
    -- context, carries its final error, and names its source.
    INSERT INTO {schema}.job (
        id, queue, policy, priority, data, retry_limit, retry_delay, retry_backoff,
        retry_delay_max, expire_in, start_after, keep_until, delete_after, singleton_key,
        group_key, trace_context, error, source_id, source_queue
    )
    SELECT {schema}.uuid7(), d.dead_letter, COALESCE(q.policy, 'standard'),
           COALESCE(q.priority, d.priority), d.data, COALESCE(q.retry_limit, d.retry_limit),
           COALESCE(q.retry_delay, d.retry_delay), COALESCE(q.retry_backoff, d.retry_backoff),
           COALESCE(q.retry_delay_max, d.retry_delay_max), COALESCE(q.expire_in, d.expire_in),
           now(), now() + COALESCE(q.retention, d.keep_until - d.start_after),
           COALESCE(q.delete_after, d.delete_after), d.singleton_key,
           d.group_key, d.trace_context, d.error, d.id, d.queue
    FROM dead AS d
    LEFT JOIN {schema}.queue AS q ON q.name = d.dead_letter
    ON CONFLICT DO NOTHING
)
SELECT id, state,
       -- Wakes the workers of queues whose jobs are due again at once.
       (SELECT count(pg_notify(%(channel)s, due.queue))
        FROM (SELECT DISTINCT queue FROM failed WHERE state = 'retry' AND start_after <= now())
            AS due) AS notified
FROM failed;
