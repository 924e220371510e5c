"""Ray job entry point: `ray job submit --submission-id <run> -- python -m jobs.preprocess CONFIG --out RUN`.

Inside a Ray job RAY_ADDRESS is set, so the run attaches to that cluster; resubmitting
the same command resumes the same run directory (committed partitions are skipped).
"""
from __future__ import annotations

import sys

from jobs.cli import app

if __name__ == "__main__":
    sys.exit(app(["preprocess", *sys.argv[1:]], standalone_mode=True))
