-- Deletes a queue and every job in it.
WITH deleted_jobs AS (
    DELETE FROM {schema}.job WHERE queue = %(name)s
)
DELETE FROM {schema}.queue WHERE name = %(name)s RETURNING name;
