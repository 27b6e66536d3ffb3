-- Back to the statistics target the transaction had before jobs_analyze_sample.sql.
SELECT set_config('default_statistics_target', %(previous)s, true);
