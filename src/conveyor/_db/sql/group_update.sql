-- Sets the limits of one group key that override the queue's defaults; a setting
-- not given (its set_* flag false) stays as it is, NULL removes the override.
INSERT INTO {schema}.job_group AS g (queue, group_key, concurrency, rate_limit, rate_period)
VALUES (%(queue)s, %(group_key)s, %(concurrency)s, %(rate_limit)s, %(rate_period)s)
ON CONFLICT (queue, group_key) DO UPDATE
SET concurrency = CASE WHEN %(set_concurrency)s THEN excluded.concurrency ELSE g.concurrency END,
    rate_limit = CASE WHEN %(set_rate_limit)s THEN excluded.rate_limit ELSE g.rate_limit END,
    rate_period = CASE WHEN %(set_rate_period)s THEN excluded.rate_period ELSE g.rate_period END,
    updated_at = now()
RETURNING *;
