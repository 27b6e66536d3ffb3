SELECT state, count(*) AS count
FROM {schema}.job
WHERE queue = %(queue)s
GROUP BY state;
