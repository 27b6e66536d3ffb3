-- Who holds the lease of a role, and whether it is still current.
SELECT l.role, l.holder, l.term, l.elected_at, l.expires_at, l.expires_at > now() AS current
FROM {schema}.leader AS l
WHERE l.role = %(role)s;
