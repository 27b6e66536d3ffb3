-- Conveyor's own connections read timestamps in UTC: psycopg builds datetimes in
-- datetime.timezone.utc several times faster than in a zone such as Etc/UTC.
SET TIME ZONE 'UTC';
