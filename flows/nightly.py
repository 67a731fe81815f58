"""The nightly Prefect flow, runnable from the repository: python flows/nightly.py INBOX.

The flow lives in salescalls.nightly.flow (`salescalls run INBOX` and `salescalls serve` use it);
this file keeps the old entry point for deployments and scripts that name it.
"""

import sys

from salescalls.nightly.flow import nightly, schedule, serve

__all__ = ["nightly", "schedule", "serve"]

if __name__ == "__main__":
    print(nightly(sys.argv[1] if len(sys.argv) > 1 else "data/demo"))
