DROP TABLE pg_temp.conveyor_staged;
