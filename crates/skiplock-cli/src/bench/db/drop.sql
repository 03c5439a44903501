-- Removes the benchmark's skiplock schema and every job in it.
DROP SCHEMA IF EXISTS skiplock_bench CASCADE
