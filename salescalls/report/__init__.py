"""The offline HTML report: collecting from the database, publishing the recordings it plays,
rendering the pages (templates/, assets/) and serving them; chart definitions shared with the
notebooks.

May import: everything below it (db, insights, script, text, records, config); never the
speech models or the pipeline.
"""

__all__ = [
    "charts",
    "site",
]
