-- One page of jobs, newest first, after the cursor. Ids are UUID version 7, whose
-- leading bits are the creation time, so the primary key gives the order (custom
-- ids sort by value).
SELECT {job_columns}
FROM {schema}.job AS j
WHERE {job_filter}
ORDER BY j.id DESC
LIMIT %(limit)s;
