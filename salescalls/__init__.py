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

# OpenMP threads that busy-wait after their work steal the core the next step needs: after
# CTranslate2 (which ships its own libgomp) had decoded a call, pyannote's diarization of the next
# one ran 4.3x slower on a loaded 2-core machine (c04: 11.9 s, then 51.6 s; with PASSIVE 12.7 and
# 13.8 s, whisper no slower). libgomp reads this once, when torch or CTranslate2 loads it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
