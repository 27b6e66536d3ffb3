-- Changes the settings given; a NULL parameter leaves a setting as it is, except
-- where a set_* flag says to store the NULL (the optional settings).
UPDATE {schema}.queue
SET policy = COALESCE(%(policy)s, policy),
    priority = COALESCE(%(priority)s, priority),
    retry_limit = COALESCE(%(retry_limit)s, retry_limit),
    retry_delay = COALESCE(%(retry_delay)s, retry_delay),
    retry_backoff = COALESCE(%(retry_backoff)s, retry_backoff),
    retry_delay_max = CASE WHEN %(set_retry_delay_max)s THEN %(retry_delay_max)s::interval
                      ELSE retry_delay_max END,
    expire_in = COALESCE(%(expire_in)s, expire_in),
    retention = COALESCE(%(retention)s, retention),
    delete_after = COALESCE(%(delete_after)s, delete_after),
    dead_letter = CASE WHEN %(set_dead_letter)s THEN %(dead_letter)s::text ELSE dead_letter END,
    rate_limit = CASE WHEN %(set_rate_limit)s THEN %(rate_limit)s::integer ELSE rate_limit END,
    rate_period = CASE WHEN %(set_rate_period)s THEN %(rate_period)s::interval
                  ELSE rate_period END,
    group_concurrency = CASE WHEN %(set_group_concurrency)s THEN %(group_concurrency)s::integer
                        ELSE group_concurrency END,
    group_rate_limit = CASE WHEN %(set_group_rate_limit)s THEN %(group_rate_limit)s::integer
                       ELSE group_rate_limit END,
    group_rate_period = CASE WHEN %(set_group_rate_period)s THEN %(group_rate_period)s::interval
                        ELSE group_rate_period END,
    fair = COALESCE(%(fair)s, fair),
    updated_at = now()
WHERE name = %(name)s
RETURNING *;
