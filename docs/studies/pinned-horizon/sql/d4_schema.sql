-- D4: design (a'), per-priority marks
\ir d0_schema.sql
\ir mark_pp.sql
