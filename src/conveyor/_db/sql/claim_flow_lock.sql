-- Serializes the claims of one queue under flow control until the transaction
-- ends, so that each sees the counts the one before it wrote. Also has the
-- transaction run claim_flow.sql on its generic plan once psycopg has prepared
-- it: planning that statement cost more than running it (design decision 22).
SELECT pg_advisory_xact_lock(hashtext(%(schema)s), hashtext(%(queue)s)),
       set_config('plan_cache_mode', 'force_generic_plan', true);
