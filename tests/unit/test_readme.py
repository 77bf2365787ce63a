"""The README's Python block runs as written."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _block(section: str) -> str:
    text = README.read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", body, re.S)
    assert match, f"no python block under ## {section}"
    return match.group(1)


def test_the_in_python_block_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "readme_block.py"
    script.write_text(_block("In Python"))
    runpy.run_path(str(script), run_name="__main__")
    features, score, alerts = capsys.readouterr().out.splitlines()
    assert features == "{'customer_lifetime_value': 1250.0, 'orders_24h': 0.0, 'spend_24h': 0.0}"
    assert score == "0.5 1.2.3"
    assert alerts == (
        "{'FeatureDrift': False, 'PredictionDrift': False, 'ModelPerformanceDegraded': False, "
        "'ScoringLatencyHigh': False}"
    )
    assert (tmp_path / ".hanzo" / "registry" / "models" / "churn_prediction").is_dir()
