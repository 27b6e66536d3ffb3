-- The notification channel is named after the schema: enqueue.sql notifies it
-- with the queue's name as the payload.
LISTEN {schema};
