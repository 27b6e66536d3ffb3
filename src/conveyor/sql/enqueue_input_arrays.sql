unnest(
    %(id)s::uuid[], %(data)s::text[], %(priority)s::integer[],
    %(start_at)s::timestamptz[], %(start_in)s::interval[],
    %(retry_limit)s::integer[], %(retry_delay)s::interval[], %(retry_backoff)s::boolean[],
    %(retry_delay_max)s::interval[], %(expire_in)s::interval[], %(retention)s::interval[],
    %(delete_after)s::interval[], %(dead_letter)s::text[], %(singleton_key)s::text[],
    %(singleton_seconds)s::double precision[]
) AS staged (id, data, priority, start_at, start_in, retry_limit, retry_delay, retry_backoff,
             retry_delay_max, expire_in, retention, delete_after, dead_letter, singleton_key,
             singleton_seconds)
