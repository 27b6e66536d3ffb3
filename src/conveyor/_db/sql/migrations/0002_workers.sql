-- Workers: finding active jobs cheaply (lease rescue, one-active-per-key policies)
-- without indexing lease_expires_at, which heartbeats update: heartbeats stay HOT.
CREATE INDEX job_active ON {schema}.job (queue) WHERE state = 'active';
