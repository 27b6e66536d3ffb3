-- Inserts jobs into one queue, one input row per job, where a NULL option
-- means "take the queue's default". Policies, throttles and custom ids are
-- enforced by the unique indexes: a rejected job is simply not inserted.
-- Jobs sent with singleton_next_slot or debounce_seconds have statements of
-- their own (enqueue_next_slot.sql, enqueue_debounce.sql); all three share
-- the parts enqueue_rows.sql (the jobs the input makes), enqueue_options.sql
-- and enqueue_result.sql (over the ids in written).
WITH input AS (
    SELECT * FROM {input}
    WHERE singleton_next_slot IS NOT TRUE AND debounce_seconds IS NULL
),
target AS (
    SELECT * FROM {schema}.queue WHERE name = %(queue)s
),
written AS (
    INSERT INTO {schema}.job (id, queue, start_after, keep_until, singleton_on, {enqueue_options})
    SELECT id, queue, start_after, keep_until, singleton_on, {enqueue_options}
    FROM ({enqueue_rows}) AS candidate
    ON CONFLICT DO NOTHING
    RETURNING id
)
{enqueue_result};
