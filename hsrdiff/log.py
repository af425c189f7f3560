"""Logging set-up shared by the CLI and the workflow scripts."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_file: str | Path | None = None, level: int = logging.INFO) -> None:
    """Log to ``log_file`` (created with its folder) or to stderr.

    Workflow scripts pass ``snakemake.log[0]`` and also redirect stderr there, so warnings from
    libraries and tracebacks of failed jobs land in the rule's log too.
    """
    handlers: list[logging.Handler]
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        stream = open(log_file, "a", buffering=1)
        sys.stderr = stream
        handlers = [logging.StreamHandler(stream)]
    else:
        handlers = [logging.StreamHandler(sys.stderr)]
    logging.basicConfig(level=level, format=FORMAT, handlers=handlers, force=True)
    logging.captureWarnings(True)
