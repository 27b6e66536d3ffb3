(SELECT ctid AS input_row, * FROM pg_temp.conveyor_staged) AS staged
