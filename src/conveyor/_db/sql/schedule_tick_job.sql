-- The job a recorded tick enqueued.
UPDATE {schema}.schedule_tick SET job = %(job)s::uuid
WHERE schedule = %(name)s AND tick = %(tick)s;
