SELECT * FROM {schema}.queue WHERE name = %(name)s;
