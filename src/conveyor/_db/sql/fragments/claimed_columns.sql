-- A shared part: the columns a worker's claim returns, in the order of
-- conveyor._rows.claimed_jobs. A claimed job's queue, state and lease are known
-- to the worker, so they are not sent; a setting equal to the queue's default
-- (the parameters, read with the queue's flow state) comes back NULL, as do a
-- start_after equal to created_at and a keep_until of start_after plus the
-- queue's retention. NULL costs neither side anything to write or read, where a
-- timestamp or an interval costs the server its formatting and the worker its
-- parsing, for each job. Only non-null columns are sent this way, so NULL
-- always means "the default".
j.id::text AS id, j.data, j.output, j.error,
NULLIF(j.priority, %(priority)s::integer) AS priority, j.retry_count,
NULLIF(j.retry_limit, %(retry_limit)s::integer) AS retry_limit,
NULLIF(j.start_after, j.created_at) AS start_after, j.created_at, j.started_at,
j.completed_at, j.singleton_key, j.progress, j.attempt,
NULLIF(j.retry_delay, %(retry_delay)s::interval) AS retry_delay,
NULLIF(j.retry_backoff, %(retry_backoff)s::boolean) AS retry_backoff, j.retry_delay_max,
NULLIF(j.expire_in, %(expire_in)s::interval) AS expire_in,
NULLIF(j.keep_until, j.start_after + %(retention)s::interval) AS keep_until,
NULLIF(j.delete_after, %(delete_after)s::interval) AS delete_after, j.dead_letter,
j.singleton_on, NULLIF(j.policy, %(policy)s::text) AS policy, j.group_key,
NULLIF(j.errors, '[]') AS errors, j.trace_context, j.source_id::text AS source_id,
j.source_queue,
CASE WHEN j.has_dependencies THEN {schema}.dependency_results(j.id) END
    AS dependency_results, j.has_dependents
