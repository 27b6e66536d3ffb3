(SELECT %(id)s::uuid AS id, %(data)s::text AS data, %(priority)s::integer AS priority,
        %(start_at)s::timestamptz AS start_at, %(start_in)s::interval AS start_in,
        %(retry_limit)s::integer AS retry_limit, %(retry_delay)s::interval AS retry_delay,
        %(retry_backoff)s::boolean AS retry_backoff,
        %(retry_delay_max)s::interval AS retry_delay_max,
        %(expire_in)s::interval AS expire_in, %(retention)s::interval AS retention,
        %(delete_after)s::interval AS delete_after, %(dead_letter)s::text AS dead_letter,
        %(singleton_key)s::text AS singleton_key,
        %(singleton_seconds)s::double precision AS singleton_seconds) AS staged
