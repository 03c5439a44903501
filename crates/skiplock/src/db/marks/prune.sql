-- Deletes the marks log's rows older than their queue's newest advance (no
-- current snapshot reads them). Returns the count deleted.
SELECT {schema}.queue_marks_prune() AS pruned
