COPY pg_temp.conveyor_staged (
    id, data, priority, start_at, start_in, retry_limit, retry_delay, retry_backoff,
    retry_delay_max, expire_in, retention, delete_after, dead_letter, singleton_key,
    singleton_seconds, singleton_next_slot, debounce_seconds, group_key, trace_context
) FROM STDIN (FORMAT BINARY);
