-- Wakes the workers of several queues at once (notifications a client owes for
-- the sends it left quiet, notify.NotifyGate).
SELECT count(pg_notify(%(channel)s, queue)) FROM unnest(%(queues)s::text[]) AS queue;
