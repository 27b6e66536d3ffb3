-- Gives up a lease on a clean stop, so that another process takes over at once
-- (with the next term: the row stays, so terms only grow).
UPDATE {schema}.leader SET expires_at = now() WHERE role = %(role)s AND holder = %(holder)s;
