-- Scheduled jobs (created, due later) are counted apart from the waiting ones in
-- the statistics, and each queue keeps totals that the maintenance leader updates
-- at every snapshot (stats_snapshot.sql): the finished jobs the table still holds,
-- by outcome (recounted every 10 minutes, with the jobs finished since added in
-- between), and running totals of the jobs that ever finished, by outcome (which
-- /metrics exposes as Prometheus counters). Reading them costs one row per queue,
-- however many finished jobs are kept.
ALTER TABLE {schema}.queue_stats ADD COLUMN scheduled bigint NOT NULL DEFAULT 0;

CREATE TABLE {schema}.queue_totals (
    queue           text PRIMARY KEY REFERENCES {schema}.queue (name) ON DELETE CASCADE,
    counted_at      timestamptz NOT NULL,
    recounted_at    timestamptz,
    completed       bigint NOT NULL,
    cancelled       bigint NOT NULL,
    failed          bigint NOT NULL,
    completed_total bigint NOT NULL DEFAULT 0,
    cancelled_total bigint NOT NULL DEFAULT 0,
    failed_total    bigint NOT NULL DEFAULT 0
);
