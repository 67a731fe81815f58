"""DuckDB: the schema and its numbered migrations (schema.sql), the one writer and read-only
readers (store), the shared SQL fragments and named-parameter filters (sql), full-text search,
and the conversation metrics computed in SQL when a call is stored.

May import: salescalls.config, salescalls.records, salescalls.script, salescalls.text.
"""

__all__ = [
    "conversation",
    "search",
    "sql",
    "store",
]
