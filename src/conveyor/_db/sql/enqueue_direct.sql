-- Bulk insert of jobs that no unique index can turn away (a standard queue;
-- no custom id, throttle or debounce): rows complete with their queue's
-- defaults, ids made by the client (uuid7, in order), straight into the job
-- table. Twice as fast as staging them for enqueue.sql (docs/benchmarks.md).
COPY {schema}.job (
{direct_columns}
) FROM STDIN (FORMAT BINARY);
