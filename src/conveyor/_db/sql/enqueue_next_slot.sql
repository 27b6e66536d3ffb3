-- Inserts jobs sent with singleton_next_slot (see enqueue.sql). Each tries its
-- throttle slot and, when that is taken, the next slot, starting no sooner than
-- that slot begins. The second try differs from the first in the slot and the
-- start alone, so a job that a policy or its id turned away is turned away again.
WITH input AS (
    SELECT * FROM {input} WHERE singleton_next_slot
),
target AS (
    SELECT * FROM {schema}.queue WHERE name = %(queue)s
),
candidate AS (
    -- Materialized (uuid7() is volatile): both tries see the same ids.
    {enqueue_rows}
),
in_slot AS (
    INSERT INTO {schema}.job (id, queue, start_after, keep_until, singleton_on, {enqueue_options})
    SELECT id, queue, start_after, keep_until, singleton_on, {enqueue_options}
    FROM candidate
    ON CONFLICT DO NOTHING
    RETURNING id
),
in_next_slot AS (
    INSERT INTO {schema}.job (id, queue, start_after, keep_until, singleton_on, {enqueue_options})
    SELECT id, queue, next_start_after, next_keep_until, next_singleton_on, {enqueue_options}
    FROM candidate AS c
    WHERE NOT EXISTS (SELECT 1 FROM in_slot AS taken WHERE taken.id = c.id)
    ON CONFLICT DO NOTHING
    RETURNING id
),
written AS NOT MATERIALIZED (
    SELECT id FROM in_slot UNION ALL SELECT id FROM in_next_slot
)
{enqueue_result};
