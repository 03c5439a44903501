-- D1: design (a), a single low-water mark per queue
\ir d0_schema.sql
\ir mark.sql
