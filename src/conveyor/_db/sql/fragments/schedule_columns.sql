s.name, s.queue, s.cron, s.tz, s.data, s.options, s.missed,
CASE WHEN s.paused THEN NULL ELSE s.next_tick END AS next_tick, s.created_at, s.updated_at,
s.paused, s.last_tick_at, s.last_job::text AS last_job_id, j.state::text AS last_job_state
