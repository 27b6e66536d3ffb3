-- Forgets workers whose row expired more than a day ago (killed, never cleaned up).
DELETE FROM {schema}.worker WHERE expires_at < now() - interval '1 day';
