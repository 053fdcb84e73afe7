"""A new method and a new dataset, each one Python file and one YAML written outside the repository
(as a user would, CONTRIBUTING.md): on PYTHONPATH and FTLAB_CONFIG_PATH they compose, are checked
like ftlab's own, train a tiny run through the real CLI, and get the method matrix's and the
bad-input catalogue's checks with nothing written for them.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from support.cli import TINY, run_cli
from ftlab.config import checked, compose as compose_config, group_options
from ftlab.errors import UserError
from support.catalogue import check_outcome, dataset_cases, run_case
from support.method_matrix import check_plain_exports, check_reloads, overrides, save_tiny_base, train_save_and_export

METHOD_FILE = '''
"""LayerNorm tuning: only the LayerNorms' scales and shifts (and the head) train."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ftlab.errors import UserError
from ftlab.peft.base import MethodSettings, PlainModelInjector, mark_trainable


@dataclass(frozen=True)
class NormSettings(MethodSettings):
    include_embeddings: bool = True  # the embeddings' LayerNorm too


class NormTuning(PlainModelInjector, name="norms", settings=NormSettings):
    def inject(self, model: nn.Module, new_parameters: set[str]) -> nn.Module:
        norms = {f"{module_name}.{name}" for module_name, module in model.named_modules()
                 if isinstance(module, nn.LayerNorm) and (self.settings.include_embeddings or "embeddings" not in module_name)
                 for name, _ in module.named_parameters()}
        if not norms:
            raise UserError(f"peft=norms: {type(model).__name__} has no LayerNorm", "use peft=bitfit or peft=lora")
        mark_trainable(model, norms | set(new_parameters))
        return model
'''

METHOD_YAML = '''
# @package _global_
peft:
  _target_: norm_tuning.NormTuning
  include_embeddings: true
optimizer:
  lr: 1.0e-2
'''

DATASET_FILE = '''
"""Reviews: `<data_dir>/reviews/{train,dev,test}.tsv`, one `label<TAB>text` per line, label neg|pos."""

from __future__ import annotations

from pathlib import Path

import datasets

from ftlab.data.sources.base import DataSource
from ftlab.data.sources.parsing import build, label_id, read_lines, require_rows, require_text
from ftlab.data.task import TaskSpec, classification
from ftlab.errors import MalformedRow

LABELS = ("neg", "pos")
FILES = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}
FILE_FORMAT = "one `label<TAB>text` per line, label neg|pos"


class ReviewsSource(DataSource):
    name = "reviews"
    file_format = FILE_FORMAT

    def local_files(self) -> list[Path]:
        return [self.under_data_dir("reviews", f) for f in FILES.values()]

    def task(self) -> TaskSpec:
        return classification(LABELS)

    def load_local(self) -> datasets.DatasetDict:
        return datasets.DatasetDict({split: parse_file(path) for split, path in zip(FILES, self.local_files())})


def parse_file(path: Path) -> datasets.Dataset:
    texts, labels = [], []
    for line_no, line in enumerate(read_lines(path, FILE_FORMAT), start=1):
        label, tab, text = line.partition("\\t")
        if not tab:
            raise MalformedRow(path, line_no, "no tab", FILE_FORMAT)
        labels.append(label_id(label, {n: i for i, n in enumerate(LABELS)}, path, line_no, LABELS))
        texts.append(require_text(text, path, line_no, "text", FILE_FORMAT))
    require_rows(len(labels), path)
    return build(texts, labels)
'''

DATASET_YAML = '''
_target_: reviews.ReviewsSource
data_dir: ${paths.data_dir}
'''


def reviews(n: int) -> str:
    return "".join(f"{'pos' if i % 2 else 'neg'}\treview {i} was {'great' if i % 2 else 'awful'}\n" for i in range(n))


@pytest.fixture(scope="module")
def extension(tmp_path_factory):
    """The four files and the data, and the environment that makes ftlab find them; set in this
    process too (the matrix's and the catalogue's checks compose here)."""
    root = tmp_path_factory.mktemp("extension")
    files = {"python/norm_tuning.py": METHOD_FILE, "python/reviews.py": DATASET_FILE,
             "conf/peft/norms.yaml": METHOD_YAML, "conf/dataset/reviews.yaml": DATASET_YAML,
             "data/reviews/train.tsv": reviews(40), "data/reviews/dev.tsv": reviews(10),
             "data/reviews/test.tsv": reviews(10)}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text).lstrip())
    python_path = os.pathsep.join(p for p in (str(root / "python"), os.environ.get("PYTHONPATH")) if p)
    env = {"FTLAB_CONFIG_PATH": str(root / "conf"), "PYTHONPATH": python_path}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        patch.syspath_prepend(str(root / "python"))
        yield {"root": root, "data": root / "data", "env": env}


def test_they_are_choices_and_are_checked_like_ftlabs_own(extension):
    from hydra.core.hydra_config import HydraConfig

    assert "norms" in group_options("peft") and "reviews" in group_options("dataset")
    cfg = compose_config([*TINY, "peft=norms", "dataset=reviews", f"paths.data_dir={extension['data']}"])
    assert cfg.optimizer.lr == 1.0e-2  # the method's own recommendation
    checked(cfg, dict(HydraConfig.get().runtime.choices))
    with pytest.raises(UserError, match="peft.include_embeddings='maybe': expected true/false"):  # the settings' types
        checked(compose_config([*TINY, "peft=norms", "peft.include_embeddings=maybe"]))
    with pytest.raises(UserError, match="valid settings: include_embeddings"):
        checked(compose_config([*TINY, "peft=norms", "+peft.layers=2"]))


def test_a_tiny_run_trains_them_through_the_cli(extension, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(*TINY, "peft=norms", "dataset=reviews", f"paths.data_dir={extension['data']}", "save.export=true",
                   f"hydra.run.dir={run_dir}", env=extension["env"])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "completed" and results["choices"]["peft"] == "norms"
    assert results["task"]["label_names"] == ["neg", "pos"] and results["history"]
    assert json.loads((run_dir / "model" / "ftlab_adapter.json").read_text())["method"] == "norms"
    assert (run_dir / "export" / "config.json").is_file()  # it merges as it is: the export is a plain model


def test_the_method_matrix_covers_the_new_method(extension, compose, tmp_path):
    base = save_tiny_base("tiny_bert", tmp_path / "base")
    pair = overrides("norms", "tiny_bert", base)
    entry = train_save_and_export(compose(*pair), pair, tmp_path / "matrix")
    check_reloads({"norms|tiny_bert": entry}, tmp_path)  # (a fresh process, finding them the same way)
    check_plain_exports({"norms|tiny_bert": entry}, tmp_path)
    llama = overrides("norms", "tiny_llama", save_tiny_base("tiny_llama", tmp_path / "llama"))
    train_save_and_export(compose(*llama), llama, tmp_path / "refused", refused="has no LayerNorm")


def test_the_bad_input_catalogue_covers_the_new_dataset(extension, tmp_path):
    cases = dataset_cases("reviews", extension["data"])
    assert len(cases) == 3
    for i, (name, case) in enumerate(cases.items()):
        check_outcome(run_case(case, tmp_path / f"case{i}", env=extension["env"]), case[2])


def test_a_name_is_one_method(extension):
    from ftlab.peft.base import Injector
    from ftlab.peft.lora import LoraInjector

    assert LoraInjector.name == "lora"
    with pytest.raises(UserError, match="two fine-tuning methods are named 'lora'"):
        class AnotherLora(Injector, name="lora"):  # noqa: F841
            def inject(self, model, new_parameters):
                return model
    conf = Path(extension["env"]["FTLAB_CONFIG_PATH"])
    (conf / "peft" / "copied.yaml").write_text(METHOD_YAML)  # a copy still naming the old class
    try:
        with pytest.raises(UserError, match="peft=copied: .* is the method registered as 'norms'"):
            from hydra.core.hydra_config import HydraConfig

            cfg = compose_config([*TINY, "peft=copied"])
            checked(cfg, dict(HydraConfig.get().runtime.choices))
        (conf / "peft" / "copied.yaml").rename(conf / "peft" / "lora.yaml")
        with pytest.raises(UserError, match="takes the name of .*ftlab/conf/peft/lora.yaml"):
            group_options("peft")
    finally:
        for name in ("copied.yaml", "lora.yaml"):
            (conf / "peft" / name).unlink(missing_ok=True)
