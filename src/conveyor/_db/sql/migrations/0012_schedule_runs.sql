-- What a schedule did last, and whether it is paused. A paused schedule sends no
-- tick (schedule_due.sql skips it); resuming it starts from the first tick after
-- the resume, so the ticks it missed while paused send nothing. last_tick_at and
-- last_job are written in the transaction that sends the job of a tick (or of a
-- run by hand); last_job is NULL when the queue's policy turned that job away.
-- No foreign key to job: finished jobs are deleted after their retention, and
-- the schedule keeps the id (the dashboard shows the job as gone).
ALTER TABLE {schema}.schedule
    ADD COLUMN paused       boolean NOT NULL DEFAULT false,
    ADD COLUMN last_tick_at timestamptz,
    ADD COLUMN last_job     uuid;
