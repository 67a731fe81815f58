"""What every bench's JSON starts with and how it is written, in one place."""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime
from pathlib import Path


def stamp() -> dict:
    """When and where a bench ran: its numbers are only comparable within the same run."""
    return {
        "date": datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.platform()}, {os.cpu_count()} cores",
        "cpus": os.cpu_count(),
    }


def write_json(path: str | Path, report: dict) -> Path:
    """`report` as indented UTF-8 JSON at `path` (folders made), announced on standard output."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    print(f"\nwritten {path}")
    return path
