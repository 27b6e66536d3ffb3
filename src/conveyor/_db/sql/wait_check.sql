-- A waited-for job's state, read under a share lock: a transaction finishing the
-- job either committed first (the state here is final) or waits for this one's
-- commit, and then sees its waiter.
SELECT j.state::text AS state FROM {schema}.job AS j WHERE j.id = %(id)s FOR SHARE;
