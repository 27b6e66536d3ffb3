SELECT COALESCE(max(version), 0) AS version FROM {schema}.migration;
