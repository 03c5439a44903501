-- Pause ($2 = true) or resume ($2 = false) queue $1, through the SQL API's
-- function (migration 0002). Claims check the queues row, so a paused queue
-- yields no more jobs from the next claim on; workers are told on the control
-- channel so a resumed queue is fetched at once.
SELECT $1::text AS name, {schema}.queue_set_paused($1::text, $2::boolean) AS paused
