-- The server's side of a statement deadline: a transaction of a worker's that
-- waits longer than this for its client's next statement (the network went silent
-- mid-transaction) is ended by the server, and its row locks with it. Local to the
-- transaction (set_config's third argument), so the setting goes with it.
SELECT set_config('idle_in_transaction_session_timeout', %(milliseconds)s, true);
