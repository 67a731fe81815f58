"""The nightly run: the inbox (which files, CRM metadata, quarantine, staged results), the
engine the calls run on (in process, local workers or Dask), the run's ledger (counters and every
write), whose fault a failed call is (faults) and the Prefect flow itself.

May import: every layer (it is the orchestrator).
"""

__all__ = [
    "engine",
    "faults",
    "flow",
    "inbox",
    "ledger",
]
