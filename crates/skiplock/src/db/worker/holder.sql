-- Who holds worker id $1 now, if a live process does: its host and pid.
SELECT host, pid FROM {schema}.workers WHERE id = $1 AND expires_at >= now()
