-- Deletes unique keys that no longer hold, looking at up to $2 keys after $1
-- (in key order; the pruner walks the table across passes): expired ones,
-- those whose job finished in a state outside the key's final_states, and
-- those whose job is gone (dropped by retention). Returns the last key
-- looked at (NULL at the end of the table) and how many were deleted.
-- Through the owner's function (migration 0003), which deletes only such
-- keys, so the worker role needs no DELETE on unique_keys.
SELECT last, n FROM {schema}.unique_keys_prune($1::text, $2::bigint)
