-- D5: ring of partitions (d2) + per-priority marks (mark_pp)
\ir d2_schema.sql
\ir mark_pp.sql
