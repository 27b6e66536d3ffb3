-- Observability: the workers that are alive, and the trace a job was sent from.
--
-- Each worker process keeps one row here while it runs (worker/presence.py): it
-- writes the row when it starts, pushes expires_at forward every few seconds,
-- and deletes the row when it stops cleanly. A worker that was killed leaves a
-- row whose expires_at passes; the leader forgets such rows after a day.
CREATE TABLE {schema}.worker (
    id          text PRIMARY KEY,
    host        text NOT NULL,
    pid         integer NOT NULL,
    queues      text[] NOT NULL,
    concurrency integer NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);

-- The trace context (W3C traceparent and tracestate) of the span that sent the
-- job, when OpenTelemetry tracing is on: the run of the job links to it.
ALTER TABLE {schema}.job ADD COLUMN trace_context jsonb;

-- Failed jobs by queue, newest first: the dead-letter view of the dashboard, and
-- the failed counts of the queue summaries, without reading finished history.
CREATE INDEX job_failed ON {schema}.job (queue, id) WHERE state = 'failed';
