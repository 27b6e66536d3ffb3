-- The ids of one page of the jobs a bulk action applies to, newest first, after
-- the cursor (the same filters and order as jobs_find.sql).
SELECT j.id
FROM {schema}.job AS j
WHERE {job_filter}
ORDER BY j.id DESC
LIMIT %(limit)s;
