"""A built wheel, installed into a fresh virtual environment, composes and runs from a folder
outside the repository: the configs and presets ship as package data. The new environment reuses
the test environment's dependencies (a .pth line), never its editable ftlab."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from support.cli import REPO, TINY


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a clean copy: setuptools' build/ in the checkout could hold stale files
    shutil.copytree(REPO / "ftlab", source / "ftlab", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(root / "dist"), str(source)], check=True, capture_output=True, timeout=300)
    wheel = next((root / "dist").glob("ftlab-*.whl"))
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "test_env_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                    "-q", str(wheel)], check=True, capture_output=True, timeout=300)
    return env_dir


def run_installed(env_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(env_dir / "bin" / "ftlab"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_the_installed_package_is_the_wheel_not_the_checkout(installed, tmp_path):
    proc = subprocess.run([str(installed / "bin" / "python"), "-c", "import ftlab; print(ftlab.__file__)"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith(str(installed)), proc.stdout + proc.stderr


def test_the_wheel_composes_a_preset_from_outside_the_repository(installed, tmp_path):
    proc = run_installed(installed, "--cfg", "job", "experiment=study001_peft", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "HoulsbyInjector" in proc.stdout and "max_epochs: 10" in proc.stdout


def test_the_wheel_runs_a_tiny_job_from_outside_the_repository(installed, tmp_path):
    proc = run_installed(installed, *TINY, "dataset=multi", "save.model=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(next((tmp_path / "outputs" / "runs").glob("*/*/results.json")).read_text())
    assert results["status"] == "completed" and results["choices"]["dataset"] == "multi"
