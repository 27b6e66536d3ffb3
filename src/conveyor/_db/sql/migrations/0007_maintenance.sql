-- Maintenance: one elected leader, finished jobs deleted after their delete_after,
-- and a history of queue statistics.
--
-- leader holds one lease per role ('maintenance'): the process named in holder
-- leads until expires_at, under the term number it was elected with; a new
-- holder means a new term. Maintenance statements check the row (holder and term,
-- FOR SHARE) in their own transaction, so a process that lost the lease cannot act,
-- and a takeover waits for an action under way to commit.
CREATE TABLE {schema}.leader (
    role       text PRIMARY KEY,
    holder     text NOT NULL,
    term       bigint NOT NULL,
    elected_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);

-- Finished jobs by their delete_after, then in the order they finished: for each
-- of the few delete_after values in use, retention deletes from the oldest, and
-- statistics count the jobs finished since the last snapshot, without reading the
-- rest of the history.
CREATE INDEX job_finished ON {schema}.job (delete_after, completed_at) WHERE state > 'active';

-- One row per queue per snapshot: live jobs by state, the jobs that finished
-- since the previous snapshot by outcome, and the age of the oldest due job.
CREATE TABLE {schema}.queue_stats (
    queue      text NOT NULL,
    taken_at   timestamptz NOT NULL,
    created    bigint NOT NULL,
    retry      bigint NOT NULL,
    active     bigint NOT NULL,
    completed  bigint NOT NULL,
    cancelled  bigint NOT NULL,
    failed     bigint NOT NULL,
    lag        interval,
    PRIMARY KEY (queue, taken_at)
);
CREATE INDEX queue_stats_taken ON {schema}.queue_stats (taken_at);
