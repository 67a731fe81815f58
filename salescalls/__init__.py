"""salescalls: offline call-quality analytics for sales teams.

Recordings -> words (openai-whisper) -> speakers (stereo channels or pyannote.audio) ->
rep/customer roles -> call-script stages (scikit-learn) -> DuckDB -> drop-off analytics.
"""

import os

# The product sends nothing anywhere: switch off the libraries' telemetry before they load.
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

__version__ = "0.1.0"
