-- Receives a bulk insert through COPY; dropped when the transaction ends.
CREATE TEMPORARY TABLE conveyor_staged (
    id                  uuid,
    data                text,
    priority            integer,
    start_at            timestamptz,
    start_in            interval,
    retry_limit         integer,
    retry_delay         interval,
    retry_backoff       boolean,
    retry_delay_max     interval,
    expire_in           interval,
    retention           interval,
    delete_after        interval,
    dead_letter         text,
    singleton_key       text,
    singleton_seconds   double precision,
    singleton_next_slot boolean,
    debounce_seconds    interval,
    group_key           text,
    trace_context       text
) ON COMMIT DROP;
