-- The steps of a flow that no unique index can turn away, written as
-- enqueue_direct.sql writes jobs, with what makes them steps: a step with
-- dependencies is written 'waiting' for as many jobs (flow_link.sql writes the
-- edges next), and a step others depend on is marked as waited for.
COPY {schema}.job (
{direct_columns},
state, waiting_for, has_dependencies, has_dependents
) FROM STDIN (FORMAT BINARY);
