"""Every ``hanzo-ml`` command answers ``--help`` with its own usage and options; exit codes are kept."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from hanzo.ml.streams.cli import cli, main

#: Every verb the README and docker-compose use; a missing one fails here before it fails a user.
EXPECTED = {
    "up", "down", "status", "simulate", "worker", "demo", "train", "monitor", "report",
    "features list", "features backfill",
    "registry list", "registry show", "registry promote", "registry rollback", "registry history",
    "registry diff",
    "dlq list", "dlq replay",
}  # fmt: skip


def _walk(
    group: click.Group, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in group.commands.items():
        path = (*prefix, name)
        yield path, command
        if isinstance(command, click.Group):
            yield from _walk(command, path)


COMMANDS = dict(_walk(cli))


def test_every_expected_verb_exists() -> None:
    leaves = {" ".join(p) for p, c in COMMANDS.items() if not isinstance(c, click.Group)}
    assert leaves == EXPECTED


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_help_shows_the_usage_and_every_option(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*path, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Usage: hanzo-ml {' '.join(path)} ")
    command = COMMANDS[path]
    first_line = (command.help or "").split("\n")[0]
    assert " ".join(first_line.split()) in " ".join(out.split())  # rich or not, help wraps lines
    for param in command.params:
        names = param.opts if isinstance(param, click.Option) else [param.human_readable_name]
        assert any(n in out for n in names), f"{param.name} missing from the help of {' '.join(path)}"


def test_top_level_help_lists_the_verbs_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-h"]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()]
    assert listed == list(cli.commands)


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2  # no verb: the help, as a usage error
    assert main(["no-such-verb"]) == 2
    assert "No such command 'no-such-verb'" in capsys.readouterr().err
    assert main(["train", "churn_prediction"]) == 2  # --data is required
    assert "Missing option '--data'" in capsys.readouterr().err
    assert main(["simulate", "--orders", "many"]) == 2
    assert "'many' is not a valid integer" in capsys.readouterr().err
    assert main(["features", "backfill"]) == 2
    assert "--data FILE or --from-topic" in capsys.readouterr().err


def test_a_failed_command_exits_1_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HANZO_REGISTRY_DIR", str(tmp_path / "empty"))
    assert main(["registry", "show", "churn_prediction", "latest"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "churn_prediction" in err and "Traceback" not in err


def test_a_bad_setting_exits_2_but_help_still_works(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HANZO_PARTITIONS", "lots")
    assert main(["registry", "list", "--help"]) == 0
    capsys.readouterr()
    assert main(["registry", "list"]) == 2
    err = capsys.readouterr().err
    assert "bad HANZO_* setting" in err and "partitions" in err


def test_the_installed_entry_point_and_python_m_are_the_same_cli() -> None:
    for argv in (
        [str(Path(sys.executable).parent / "hanzo-ml"), "--help"],
        [sys.executable, "-m", "hanzo.ml.streams.cli", "--help"],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("Usage: hanzo-ml [OPTIONS] COMMAND")
