-- D3: ring of partitions (d2) + single mark (mark.sql)
\ir d2_schema.sql
\ir mark.sql
