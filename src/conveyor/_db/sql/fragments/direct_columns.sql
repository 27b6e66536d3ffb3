-- A shared part: the columns of a bulk insert written straight into the job
-- table (enqueue_direct.sql, enqueue_flow.sql), in the order of
-- conveyor._ops.enqueue._DIRECT_TYPES.
id, queue, policy, priority, data, retry_limit, retry_delay, retry_backoff,
retry_delay_max, expire_in, start_after, keep_until, delete_after, dead_letter,
singleton_key, group_key, trace_context
