-- Bulk insert of jobs that no unique index can turn away (a standard queue;
-- no custom id, throttle or debounce): rows complete with their queue's
-- defaults, ids made by the client (uuid7, in order), straight into the job
-- table. Twice as fast as staging them for enqueue.sql (docs/benchmarks.md).
COPY {schema}.job (
    id, queue, policy, priority, data, retry_limit, retry_delay, retry_backoff,
    retry_delay_max, expire_in, start_after, keep_until, delete_after, dead_letter,
    singleton_key, group_key, trace_context
) FROM STDIN (FORMAT BINARY);
