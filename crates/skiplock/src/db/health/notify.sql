-- How full the server's NOTIFY queue is, from 0 to 1. At 1, every NOTIFY
-- (each enqueue's wake-up) fails. It fills when a session LISTENs and never
-- reads. No parameters.
SELECT pg_notification_queue_usage()
