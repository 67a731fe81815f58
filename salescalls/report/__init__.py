"""The offline HTML report: collecting from the database, publishing the recordings it plays,
rendering the pages (templates/, assets/) and serving them; chart definitions shared with the
notebooks.

May import: everything below it (db, insights, script, text, records, config); never the
speech models or the pipeline.
"""

__all__ = [
    "audio",  # the recordings the pages play, as MP3
    "charts",  # chart definitions, shared with the notebooks
    "collect",  # overview, funnel, stage and trackers data (read-only SQL)
    "details",  # each call's and rep's page data
    "layout",  # options, what a build wrote, page file names
    "render",  # Jinja templates to HTML
    "server",  # HTTP with range requests
    "site",  # build(): collect, publish, render, swap in
    "values",  # JSON-safe values for the pages
    "words",  # the product's own words on the pages, in the UI language
]
