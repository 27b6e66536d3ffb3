-- Whether %(holder)s still leads %(role)s in %(term)s. Run first in the
-- transaction of every leader's action: the row stays share-locked until it
-- commits, so no other process can take the lease over while the action runs.
SELECT l.term
FROM {schema}.leader AS l
WHERE l.role = %(role)s AND l.holder = %(holder)s AND l.term = %(term)s
  AND l.expires_at > now()
FOR SHARE;
