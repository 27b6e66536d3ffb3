-- Fair claims take keys in turn: each claim of a queue under flow control starts
-- after the group key where the one before it stopped (claim_flow.sql), so that
-- every key gets its turn however many there are. One row per queue, written
-- under the queue's claim lock.
CREATE TABLE {schema}.flow_cursor (
    queue     text PRIMARY KEY REFERENCES {schema}.queue (name) ON DELETE CASCADE,
    group_key text NOT NULL
);
