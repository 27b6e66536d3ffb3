-- Inserts jobs into one queue, one input row per job, where a NULL option
-- means "take the queue's default". Policies, throttles and custom ids are
-- enforced by the unique indexes: a rejected job is simply not inserted.
WITH input AS (
    SELECT * FROM {input}
),
target AS (
    SELECT * FROM {schema}.queue WHERE name = %(queue)s
),
inserted AS (
    INSERT INTO {schema}.job (
        id, queue, policy, priority, data, retry_limit, retry_delay, retry_backoff,
        retry_delay_max, expire_in, start_after, keep_until, delete_after, dead_letter,
        singleton_key, singleton_on
    )
    SELECT
        COALESCE(i.id, {schema}.uuid7()), q.name, q.policy, COALESCE(i.priority, q.priority),
        i.data::jsonb, COALESCE(i.retry_limit, q.retry_limit), COALESCE(i.retry_delay, q.retry_delay),
        COALESCE(i.retry_backoff, q.retry_backoff), COALESCE(i.retry_delay_max, q.retry_delay_max),
        COALESCE(i.expire_in, q.expire_in), s.start_after,
        s.start_after + COALESCE(i.retention, q.retention),
        COALESCE(i.delete_after, q.delete_after), COALESCE(i.dead_letter, q.dead_letter),
        i.singleton_key,
        CASE WHEN i.singleton_seconds IS NOT NULL THEN to_timestamp(
            floor(extract(epoch FROM now()) / i.singleton_seconds) * i.singleton_seconds) END
    FROM input AS i
    CROSS JOIN target AS q
    CROSS JOIN LATERAL (
        SELECT COALESCE(i.start_at, now() + COALESCE(i.start_in, interval '0'))
    ) AS s (start_after)
    ON CONFLICT DO NOTHING
    RETURNING id
)
SELECT EXISTS (SELECT 1 FROM target) AS queue_found,
       (SELECT count(*) FROM inserted) AS inserted,
       (SELECT id FROM inserted LIMIT 1) AS first_id,
       -- Wakes listening workers when the transaction commits (at most one
       -- notification per statement, and none when the client debounces).
       (SELECT pg_notify(%(channel)s, %(queue)s)
        WHERE %(notify)s AND EXISTS (SELECT 1 FROM inserted)) AS notified;
