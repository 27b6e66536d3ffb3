-- Serializes the claims of one queue under flow control until the transaction
-- ends, so that each sees the counts the one before it wrote.
SELECT pg_advisory_xact_lock(hashtext(%(schema)s), hashtext(%(queue)s));
