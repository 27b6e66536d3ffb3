-- Dependencies between jobs (flows). A job that waits for others is 'waiting':
-- the new state sorts after 'failed', so every predicate written as
-- state < 'active' (claims, lag, retention) or state <= 'active' (the policies'
-- unique indexes) leaves it out. This migration may run in the transaction that
-- adds the value, where PostgreSQL refuses to use it: nothing below names it.
ALTER TYPE {schema}.job_state ADD VALUE IF NOT EXISTS 'waiting';

-- waiting_for: the dependencies not settled yet (a waiting job becomes due when it
-- reaches 0). has_dependencies: the claim reads the dependencies' outputs.
ALTER TABLE {schema}.job
    ADD COLUMN waiting_for      integer NOT NULL DEFAULT 0,
    ADD COLUMN has_dependencies boolean NOT NULL DEFAULT false;

-- The jobs others wait (or waited) for, by id: where settle_dependents.sql starts.
-- A key of unique ids, so no skew of the edges (a fan-out of 100,000 steps on one
-- job) misleads the planner, and plain jobs, which are never in it, cost one probe
-- of it after each batch of completions. Written by the flow that adds the
-- dependents, after it locked the job (flow_lock.sql).
CREATE TABLE {schema}.job_parent (
    job_id uuid PRIMARY KEY
);

-- One row an edge: job_id waits for depends_on. ref is the name the dependent's
-- handler reads the output by (NULL: the dependency's id). An edge is settled
-- once, when depends_on finished (settle_dependents.sql). No foreign keys: a key
-- check on every job deleted by retention would cost the plain path.
CREATE TABLE {schema}.job_dependency (
    job_id     uuid NOT NULL,
    depends_on uuid NOT NULL,
    ref        text,
    on_failure text NOT NULL DEFAULT 'cancel' CHECK (on_failure IN ('cancel', 'ignore', 'fail')),
    settled    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (job_id, depends_on)
);
CREATE INDEX job_dependency_parent ON {schema}.job_dependency (depends_on);

-- Steps whose dependencies all finished but whose key a queue policy holds:
-- maintenance releases them when the key frees (release_held.sql). 'waiting' is
-- the only state after 'failed'.
CREATE INDEX job_held ON {schema}.job (queue) WHERE waiting_for = 0 AND state > 'failed';

-- Callers of wait_for: a job finishing with a waiter notifies <schema>.finished.
CREATE TABLE {schema}.job_waiter (
    job_id uuid NOT NULL,
    since  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_waiter_job ON {schema}.job_waiter (job_id);

-- What a job's handler receives of its dependencies: the outputs of those that
-- completed, by ref (or id), and how many ended in each state.
CREATE FUNCTION {schema}.dependency_results(dependent uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'outputs', COALESCE(jsonb_object_agg(COALESCE(d.ref, d.depends_on::text), p.output)
                            FILTER (WHERE p.state = 'completed'), '{{}}'),
        'completed', count(*) FILTER (WHERE p.state = 'completed'),
        'failed', count(*) FILTER (WHERE p.state = 'failed'),
        'cancelled', count(*) FILTER (WHERE p.state = 'cancelled'))
    FROM {schema}.job_dependency AS d
    JOIN {schema}.job AS p ON p.id = d.depends_on
    WHERE d.job_id = dependent
$$;
