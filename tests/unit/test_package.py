"""The distribution installs one import root, ``hanzo.ml``, and works beside an application's own folders."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import hanzo.ml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--verbose", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), str(ROOT)],
        check=True,
        cwd=build,
        env={"PATH": "/usr/bin:/bin", "HOME": str(build), "PIP_NO_INDEX": "1"},
        capture_output=True,
        text=True,
    )
    # setuptools warns of a folder it would leave out ("Package would be ignored"): every folder is listed
    assert "BuildBackendWarning" not in done.stdout + done.stderr, done.stdout[-3000:]
    (found,) = out.glob("hanzo_ml-*.whl")
    return found


def test_the_wheel_has_one_top_level_name_and_a_namespace(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"hanzo"}
    assert "hanzo/__init__.py" not in names  # PEP 420: other hanzo-* packages share the namespace
    for expected in (
        "hanzo/ml/__init__.py",
        "hanzo/ml/py.typed",
        "hanzo/ml/features/store.py",
        "hanzo/ml/features/entity.lua",
        "hanzo/ml/config/features.yaml",
        "hanzo/ml/config/pipelines/churn_prediction.yaml",
        "hanzo/ml/config/prometheus/alerts.yml",
        "hanzo/ml/schemas/events.py",
        "hanzo/ml/streams/cli/__init__.py",
    ):
        assert expected in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "hanzo-ml = hanzo.ml.streams.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_installed_wheel_is_not_shadowed_by_an_application_folder(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--target", str(target), str(wheel)],
        check=True,
    )
    app = tmp_path / "app"
    for own in ("config", "features", "streams"):  # an online shop's own packages of the same names
        (app / own).mkdir(parents=True)
        (app / own / "__init__.py").write_text("MINE = True\n")
    # -S: no .pth files, so the editable install of this checkout is not on the path; dependencies are
    site_packages = sysconfig.get_paths()["purelib"]
    code = (
        "import sys; sys.path[1:1] = [sys.argv[1], sys.argv[2]]\n"
        "import config, features\n"
        "from hanzo.ml import FeatureStore, Registry, ServingEngine, Monitor\n"
        "import hanzo.ml\n"
        "print(config.MINE, features.MINE, hanzo.ml.__file__)\n"
        "print(FeatureStore().get_features(customer_id='c1', features=['orders_24h']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", code, str(target), site_packages],
        cwd=app, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first == f"True True {target / 'hanzo' / 'ml' / '__init__.py'}"
    assert second == "{'orders_24h': 0.0}"


def test_the_checkout_maps_the_top_level_folders() -> None:
    """hanzo/ml/<package> is the design card's top-level folder, not a copy."""
    ml = Path(hanzo.ml.__file__).parent
    for package in ("config", "schemas", "features", "learners", "registry", "monitor", "streams"):
        assert (ml / package).resolve() == ROOT / package
