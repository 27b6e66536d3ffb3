-- Creates queues with the built-in defaults unless they exist.
INSERT INTO {schema}.queue (name)
SELECT unnest(%(names)s::text[])
ON CONFLICT (name) DO NOTHING;
