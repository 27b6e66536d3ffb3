-- Flow control: group keys on jobs, limits per queue and per key, pauses.
--
-- A job's group_key names what it belongs to (a tenant, a channel, a campaign).
-- Limits per key are enforced where jobs are claimed (claim_flow.sql); their
-- defaults live on the queue, and job_group holds per-key overrides and pauses.
-- rate_window counts the jobs started in the current fixed window of each rate
-- limit: the queue's own (per_group false, group_key '') and each key's.
ALTER TABLE {schema}.job ADD COLUMN group_key text;

ALTER TABLE {schema}.queue
    ADD COLUMN paused_until      timestamptz,
    ADD COLUMN rate_limit        integer CHECK (rate_limit > 0),
    ADD COLUMN rate_period       interval CHECK (rate_period > interval '0'),
    ADD COLUMN group_concurrency integer CHECK (group_concurrency > 0),
    ADD COLUMN group_rate_limit  integer CHECK (group_rate_limit > 0),
    ADD COLUMN group_rate_period interval CHECK (group_rate_period > interval '0'),
    ADD COLUMN fair              boolean NOT NULL DEFAULT false,
    ADD CHECK ((rate_limit IS NULL) = (rate_period IS NULL)),
    ADD CHECK ((group_rate_limit IS NULL) = (group_rate_period IS NULL)),
    -- Claims under flow control do not apply the one-active-per-key policies.
    ADD CONSTRAINT queue_flow_policy CHECK (
        policy NOT IN ('singleton', 'stately')
        OR (rate_limit IS NULL AND group_concurrency IS NULL AND group_rate_limit IS NULL
            AND NOT fair));

CREATE TABLE {schema}.job_group (
    queue        text NOT NULL REFERENCES {schema}.queue (name) ON DELETE CASCADE,
    group_key    text NOT NULL,
    concurrency  integer CHECK (concurrency > 0),
    rate_limit   integer CHECK (rate_limit > 0),
    rate_period  interval CHECK (rate_period > interval '0'),
    paused_until timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue, group_key),
    CHECK ((rate_limit IS NULL) = (rate_period IS NULL))
);

CREATE TABLE {schema}.rate_window (
    queue        text NOT NULL REFERENCES {schema}.queue (name) ON DELETE CASCADE,
    per_group    boolean NOT NULL,
    group_key    text NOT NULL,
    window_start timestamptz NOT NULL,
    started      integer NOT NULL,
    PRIMARY KEY (queue, per_group, group_key)
);

-- The start of the current fixed window of a rate limit: windows begin at
-- multiples of the period since the Unix epoch (NULL without a period).
CREATE FUNCTION {schema}.window_start(period interval) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT to_timestamp(floor(extract(epoch FROM now()) / extract(epoch FROM period))
                        * extract(epoch FROM period))
$$;

-- Keyed jobs only, so jobs without a group key pay nothing for these.
CREATE INDEX job_group_claim ON {schema}.job (queue, group_key, priority DESC, start_after, id)
    WHERE state < 'active' AND group_key IS NOT NULL;
CREATE INDEX job_group_active ON {schema}.job (queue, group_key)
    WHERE state = 'active' AND group_key IS NOT NULL;
