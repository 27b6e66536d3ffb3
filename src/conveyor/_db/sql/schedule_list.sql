SELECT {schedule_columns}
FROM {schema}.schedule AS s
LEFT JOIN {schema}.job AS j ON j.id = s.last_job
ORDER BY s.name;
