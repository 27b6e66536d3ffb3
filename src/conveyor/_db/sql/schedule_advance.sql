-- Moves a schedule to its next tick, and forgets its ticks older than a day
-- (by the tick's clock).
WITH pruned AS (
    DELETE FROM {schema}.schedule_tick
    WHERE schedule = %(name)s AND tick < %(now)s - interval '1 day'
)
UPDATE {schema}.schedule SET next_tick = %(next_tick)s WHERE name = %(name)s;
