-- uuid7() with the clock's fraction of a millisecond in the 12 bits after the
-- millisecond (RFC 9562, section 6.2, method 3) instead of random ones: ids made
-- one after the other sort in that order even within one millisecond, so "newest
-- first" (find_jobs, the dashboard) holds for sends a fraction of a millisecond
-- apart. The last 62 bits stay random.
CREATE OR REPLACE FUNCTION {schema}.uuid7() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT (lpad(to_hex(floor(c.ms)::bigint), 12, '0')
            || '7' || lpad(to_hex(floor((c.ms - floor(c.ms)) * 4096)::integer), 3, '0')
            || to_hex(8 + (random() * 3)::integer)
            || lpad(to_hex((random() * 4294967295)::bigint), 8, '0')
            || lpad(to_hex((random() * 16777215)::integer), 7, '0'))::uuid
    FROM (SELECT extract(epoch FROM clock_timestamp()) * 1000) AS c (ms)
$$;
