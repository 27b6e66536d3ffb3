policy, priority, data, retry_limit, retry_delay, retry_backoff, retry_delay_max, expire_in,
delete_after, dead_letter, singleton_key, group_key, debounce_window, trace_context
