-- Removes the ceiling's tables.
DROP SCHEMA IF EXISTS skiplock_bench_ceiling CASCADE
