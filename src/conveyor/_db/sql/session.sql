-- Conveyor's own connections read timestamps in UTC: psycopg builds datetimes in
-- datetime.timezone.utc several times faster than in a zone such as Etc/UTC.
SET TIME ZONE 'UTC';
-- No JIT compilation: Conveyor's statements are short, and the planner's guesses
-- for the recursive settling of dependencies (settle_dependents.sql) can pass
-- jit_above_cost by orders of magnitude, so that each batch of completions would
-- spend most of a second compiling before it runs for a millisecond.
SET jit = off;
