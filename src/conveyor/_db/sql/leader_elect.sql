-- Takes or renews the lease of a role: a holder renews its own lease at any time,
-- and anyone takes a lease that has lapsed, with the next term. Returns the term
-- when %(holder)s now leads, nothing when another process does; db_time is the
-- database's clock (to check the application's against it).
INSERT INTO {schema}.leader AS l (role, holder, term, elected_at, expires_at)
VALUES (%(role)s, %(holder)s, 1, now(), now() + %(lease)s)
ON CONFLICT (role) DO UPDATE
SET term = CASE WHEN l.holder = excluded.holder THEN l.term ELSE l.term + 1 END,
    elected_at = CASE WHEN l.holder = excluded.holder THEN l.elected_at ELSE now() END,
    holder = excluded.holder,
    expires_at = excluded.expires_at
WHERE l.holder = excluded.holder OR l.expires_at <= now()
RETURNING l.term, extract(epoch FROM now())::float8 AS db_time;
