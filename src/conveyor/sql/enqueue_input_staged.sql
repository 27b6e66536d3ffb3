pg_temp.conveyor_staged AS staged
