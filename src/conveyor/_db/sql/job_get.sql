SELECT {job_columns} FROM {schema}.job AS j WHERE j.id = %(id)s;
