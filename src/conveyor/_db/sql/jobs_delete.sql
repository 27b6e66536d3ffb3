DELETE FROM {schema}.job WHERE id = ANY (%(ids)s) RETURNING id;
