SELECT * FROM {schema}.queue ORDER BY name;
