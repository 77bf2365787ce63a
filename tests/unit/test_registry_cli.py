"""`hanzo-ml registry ...` verbs against a real registry folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from hanzo.ml.config.errors import RegistryError
from hanzo.ml.config.settings import Settings
from hanzo.ml.registry import Registry
from hanzo.ml.streams.cli import run as _run


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(registry_dir=tmp_path / "reg", registry_hmac_key=SecretStr("cli-key"))


@pytest.fixture
def reg(settings: Settings) -> Registry:
    reg = Registry(settings.registry_path, hmac_key=b"cli-key")
    reg.register({"w": 1}, "churn", version="1.0.0", metadata={"metrics": {"auc": 0.8}})
    reg.register({"w": 2}, "churn", version="1.1.0", metadata={"metrics": {"auc": 0.9}})
    return reg


def test_list_show_diff(reg: Registry, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["registry", "list"], settings) == 0
    out = capsys.readouterr().out
    assert "churn" in out and "1.1.0" in out
    assert _run(["registry", "list", "churn"], settings) == 0
    out = capsys.readouterr().out
    assert "1.0.0" in out and "1.1.0" in out
    assert _run(["registry", "show", "churn", "latest"], settings) == 0
    out = capsys.readouterr().out
    assert "1.1.0" in out and "ok" in out
    assert _run(["registry", "diff", "churn", "1.0.0", "1.1.0"], settings) == 0
    out = capsys.readouterr().out
    assert "metrics.auc" in out and "0.8" in out and "0.9" in out


def test_promote_rollback_history(
    reg: Registry, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(["registry", "promote", "churn", "1.0.0", "--reason", "first"], settings) == 0
    assert _run(["registry", "promote", "churn", "1.1.0"], settings) == 0
    assert reg.aliases("churn") == {"production": "1.1.0"}
    assert _run(["registry", "rollback", "churn", "--reason", "auc dropped"], settings) == 0
    assert reg.aliases("churn") == {"production": "1.0.0"}
    capsys.readouterr()
    assert _run(["registry", "history", "churn"], settings) == 0
    out = capsys.readouterr().out
    assert out.count("promote") == 2 and "rollback" in out and "auc dropped" in out


def test_show_reports_a_failed_integrity_check(
    reg: Registry, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    (settings.registry_path / "models/churn/versions/1.0.0/model.pkl").write_bytes(b"tampered")
    assert _run(["registry", "show", "churn", "1.0.0"], settings) == 1
    assert "FAILED" in capsys.readouterr().out


def test_unknown_model_raises_a_registry_error(reg: Registry, settings: Settings) -> None:
    with pytest.raises(RegistryError, match="unknown model 'nope'; registered models: churn"):
        _run(["registry", "list", "nope"], settings)
