"""DuckDB: the schema and its numbered migrations (schema.sql), the one writer and read-only
readers (store), the run log of nightly runs, attempts and quarantine (runlog), the shared SQL
fragments and named-parameter filters (sql), full-text search, the conversation metrics computed
in SQL when a call is stored, and the Parquet export.

May import: salescalls.config, salescalls.errors, salescalls.records, salescalls.script,
salescalls.text.
"""

__all__ = [
    "conversation",
    "parquet",
    "runlog",
    "search",
    "sql",
    "store",
]
