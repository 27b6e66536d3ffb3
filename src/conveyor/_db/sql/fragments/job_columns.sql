j.id::text AS id, j.queue, j.state, j.data, j.output, j.error, j.priority, j.retry_count,
j.retry_limit, j.start_after, j.created_at, j.started_at, j.completed_at, j.singleton_key,
j.progress, j.attempt, j.retry_delay, j.retry_backoff, j.retry_delay_max, j.expire_in,
j.keep_until, j.delete_after, j.dead_letter, j.singleton_on, j.policy, j.lease_expires_at,
j.group_key, NULLIF(j.errors, '[]') AS errors, j.trace_context, j.source_id::text AS source_id,
j.source_queue,
CASE WHEN j.has_dependencies THEN {schema}.dependency_results(j.id) END
    AS dependency_results, j.has_dependents
