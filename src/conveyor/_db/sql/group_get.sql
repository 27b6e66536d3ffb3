SELECT * FROM {schema}.job_group WHERE queue = %(queue)s AND group_key = %(group_key)s;
