-- Cron schedules. Each schedule keeps the next tick it has not enqueued yet
-- (next_tick); the elected leader's tick (scheduler.py) locks the due schedules
-- FOR UPDATE SKIP LOCKED, enqueues their jobs and moves next_tick on, all in one
-- transaction.
CREATE TABLE {schema}.schedule (
    name       text PRIMARY KEY,
    queue      text NOT NULL,
    cron       text NOT NULL,
    tz         text NOT NULL DEFAULT 'UTC',
    data       jsonb,
    -- The send options of the schedule's jobs, checked when it was saved;
    -- durations in seconds.
    options    jsonb NOT NULL DEFAULT '{{}}',
    -- After downtime: one job for all the missed ticks, or none.
    missed     text NOT NULL DEFAULT 'once' CHECK (missed IN ('once', 'skip')),
    next_tick  timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Ticks that were enqueued, written in the transaction that enqueues the tick's
-- job: the primary key is what makes a tick's job exactly one, whatever the
-- locks did. job is NULL when the queue's policy turned the job away. Rows older
-- than a day are pruned by the tick.
CREATE TABLE {schema}.schedule_tick (
    schedule    text NOT NULL REFERENCES {schema}.schedule (name) ON DELETE CASCADE,
    tick        timestamptz NOT NULL,
    job         uuid,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule, tick)
);
