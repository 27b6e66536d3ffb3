-- A shared part: lease_expired.sql looks in one queue, through job_active.
AND queue = %(queue)s
