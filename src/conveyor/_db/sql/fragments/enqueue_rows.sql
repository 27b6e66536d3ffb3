SELECT COALESCE(i.id, {schema}.uuid7()) AS id, q.name AS queue, i.input_row,
       s.start_after, s.start_after + s.retention AS keep_until,
       to_timestamp(s.slot * i.singleton_seconds) AS singleton_on,
       n.start_after AS next_start_after, n.start_after + s.retention AS next_keep_until,
       n.singleton_on AS next_singleton_on,
       q.policy, COALESCE(i.priority, q.priority) AS priority, i.data::jsonb AS data,
       COALESCE(i.retry_limit, q.retry_limit) AS retry_limit,
       COALESCE(i.retry_delay, q.retry_delay) AS retry_delay,
       COALESCE(i.retry_backoff, q.retry_backoff) AS retry_backoff,
       COALESCE(i.retry_delay_max, q.retry_delay_max) AS retry_delay_max,
       COALESCE(i.expire_in, q.expire_in) AS expire_in,
       COALESCE(i.delete_after, q.delete_after) AS delete_after,
       COALESCE(i.dead_letter, q.dead_letter) AS dead_letter,
       i.singleton_key, i.group_key, i.debounce_seconds AS debounce_window,
       i.trace_context::jsonb AS trace_context
FROM input AS i
CROSS JOIN target AS q
CROSS JOIN LATERAL (
    -- A debounced job starts no sooner than its window from now. Throttle slots
    -- are aligned to the Unix epoch.
    SELECT GREATEST(COALESCE(i.start_at, now() + COALESCE(i.start_in, interval '0')),
                    now() + i.debounce_seconds),
           COALESCE(i.retention, q.retention),
           floor(extract(epoch FROM now()) / i.singleton_seconds)
) AS s (start_after, retention, slot)
CROSS JOIN LATERAL (
    -- The next slot, and the start of a job moved there.
    SELECT to_timestamp((s.slot + 1) * i.singleton_seconds),
           GREATEST(s.start_after, to_timestamp((s.slot + 1) * i.singleton_seconds))
) AS n (singleton_on, start_after)
