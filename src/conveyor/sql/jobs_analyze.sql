ANALYZE {schema}.job;
