-- A worker's heartbeat for the attempts it is running: renews the leases that are
-- a third or more used up, stores progress reported since the last beat, and
-- returns the attempts that still hold their job. An attempt missing from the
-- result was cancelled, rescued or deleted: its handler should stop.
WITH input AS (
    SELECT * FROM unnest(%(id)b::uuid[], %(attempt)b::integer[], %(progress)b::jsonb[])
        AS i (id, attempt, progress)
),
held AS (
    SELECT j.id FROM {schema}.job AS j JOIN input AS i ON i.id = j.id AND i.attempt = j.attempt
    WHERE j.state = 'active'
),
renewed AS (
    UPDATE {schema}.job AS j
    SET lease_expires_at = now() + %(lease)s::interval,
        progress = COALESCE(i.progress, j.progress)
    FROM input AS i
    WHERE j.id = i.id
      AND j.attempt = i.attempt
      AND j.state = 'active'
      AND (i.progress IS NOT NULL
           OR j.lease_expires_at < now() + %(lease)s::interval * 2 / 3)
)
SELECT id FROM held;
