-- A worker that stops cleanly removes its row.
DELETE FROM {schema}.worker WHERE id = %(id)s;
