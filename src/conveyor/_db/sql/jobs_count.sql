-- How many jobs match the job list's filters (the same as jobs_find.sql).
SELECT count(*) AS count
FROM {schema}.job AS j
WHERE {job_filter};
