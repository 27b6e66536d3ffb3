SELECT * FROM {schema}.job WHERE id = %(id)s;
