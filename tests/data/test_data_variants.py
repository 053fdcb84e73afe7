"""The data variants the studies used: few-shot samples of a dataset, several datasets in one label space,
and a user's own files by config only (`dataset=local`)."""

from __future__ import annotations

import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

from collections import Counter
from pathlib import Path

import pytest
from support.cli import DATA_DIR, TINY, run_cli

from ftlab.config import build
from ftlab.data.sources import GlueSource
from ftlab.data.sources.fewshot import FewShotSource
from ftlab.data.sources.local import LocalSource
from ftlab.data.sources.multi import MultiSource
from ftlab.data.task import TaskType
from ftlab.errors import DataFileMissing, InvalidChoice, MalformedRow, UnknownLabel, UserError

D = str(DATA_DIR)
pytestmark = pytest.mark.skipif(not DATA_DIR.is_dir(), reason=f"shared data not found at {DATA_DIR}")


def sizes(loaded) -> dict[str, int]:
    return {s: len(loaded.splits[s]) for s in ("train", "validation", "test")}


def rows(ds) -> list[tuple]:
    cols = ds[:]
    return list(zip(*(cols[c] for c in ds.column_names)))


# ---- few-shot ------------------------------------------------------------------------------------
@pytest.mark.parametrize("base,k,classes,full", [
    ("restaurant_sup", 4, 3, {"validation": 150, "test": 1120}),
    ("acl_sup", 3, 6, {"validation": 114, "test": 139}),
    ("agnews_sup", 5, 4, {"validation": 684, "test": 760}),
])
def test_fewshot_takes_k_per_class_and_keeps_validation_and_test(base, k, classes, full):
    loaded = FewShotSource(base, k=k, data_dir=D).load()
    assert sizes(loaded) == {"train": k * classes, **full}
    assert Counter(loaded.splits["train"][:]["label"]) == {c: k for c in range(classes)}
    assert loaded.task.num_labels == classes


def test_fewshot_is_deterministic_and_changes_with_seed_and_k():
    a = FewShotSource("restaurant_sup", k=4, sample_seed=1, data_dir=D)
    b = FewShotSource("restaurant_sup", k=4, sample_seed=1, data_dir=D)
    c = FewShotSource("restaurant_sup", k=4, sample_seed=2, data_dir=D)
    k8 = FewShotSource("restaurant_sup", k=8, sample_seed=1, data_dir=D)
    train = {name: rows(s.load().splits["train"]) for name, s in (("a", a), ("b", b), ("c", c), ("k8", k8))}
    assert train["a"] == train["b"] and train["a"] != train["c"]
    assert set(train["a"]) < set(train["k8"])  # the k=4 sample is part of the k=8 one
    assert a.fingerprint() == b.fingerprint()
    assert len({a.fingerprint(), c.fingerprint(), k8.fingerprint(), FewShotSource("restaurant_sup", k=4, sample_seed=1,
                validation="few_shot", data_dir=D).fingerprint()}) == 4
    assert a.fingerprint() != FewShotSource("laptop_sup", k=4, sample_seed=1, data_dir=D).fingerprint()


def test_fewshot_validation_sampled_too_leaves_train_alone():
    full = FewShotSource("restaurant_sup", k=4, data_dir=D).load()
    few = FewShotSource("restaurant_sup", k=4, validation="few_shot", data_dir=D).load()
    assert sizes(few) == {"train": 12, "validation": 12, "test": 1120}
    assert rows(few.splits["train"]) == rows(full.splits["train"])
    assert Counter(few.splits["validation"][:]["label"]) == {0: 4, 1: 4, 2: 4}


def test_fewshot_class_with_too_few_examples_is_named():
    with pytest.raises(UserError, match=r"class 'Future' has only 60 example\(s\) in the train split of acl_sup.*k=61") as e:
        FewShotSource("acl_sup", k=61, data_dir=D).load()
    assert "dataset.k=60" in e.value.fix
    with pytest.raises(UserError, match=r"class 'Extends' has only 4 example\(s\) in the validation split") as e:
        FewShotSource("acl_sup", k=5, validation="few_shot", data_dir=D).load()
    assert "dataset.k=4" in e.value.fix and "dataset.validation=full" in e.value.fix


def test_fewshot_refuses_bad_settings():
    with pytest.raises(InvalidChoice, match="dataset.base='nope'") as e:
        FewShotSource("nope", data_dir=D)
    assert "restaurant_sup" in e.value.fix and "acl_sup" in e.value.fix
    with pytest.raises(UserError, match="regression"):
        FewShotSource(GlueSource(D, subset="stsb"), k=2)
    with pytest.raises(UserError, match="dataset.k=0"):
        FewShotSource("acl_sup", k=0, data_dir=D)
    with pytest.raises(InvalidChoice, match="dataset.validation"):
        FewShotSource("acl_sup", validation="half", data_dir=D)


def test_fewshot_configs_and_base_overrides(compose):
    for name, classes in (("restaurant_fs", 3), ("acl_fs", 6), ("agnews_fs", 4)):
        source = build(compose(f"dataset={name}"), "dataset")
        assert isinstance(source, FewShotSource) and source.k == 16 and source.task().num_labels == classes
    assert build(compose("dataset=restaurant_fs", "dataset.base=laptop_sup"), "dataset").base.domain == "laptop"
    source = build(compose("dataset=agnews_fs", "dataset.k=2", "dataset.base_overrides={text_fields:title_description}"), "dataset")
    assert source.base.text_fields == "title_description"
    with pytest.raises(UserError, match="dataset.base_overrides.text_field is not a setting"):
        build(compose("dataset=agnews_fs", "dataset.base_overrides={text_field:title_description}"), "dataset")
    with pytest.raises(UserError, match=r"dataset.base_overrides.text_fields='title' is not") as e:  # where it was set
        build(compose("dataset=agnews_fs", "dataset.base_overrides={text_fields:title}"), "dataset")
    assert "title_description" in e.value.fix


# ---- multi ---------------------------------------------------------------------------------------
def test_multi_offsets_labels_and_sums_sizes():
    source = MultiSource(["restaurant_sup", "laptop_sup"], data_dir=D)
    loaded = source.load()
    assert loaded.task.label_names == tuple(f"{p}:{n}" for p in ("restaurant_sup", "laptop_sup")
                                            for n in ("negative", "neutral", "positive"))
    assert sizes(loaded) == {"train": 3452 + 2163, "validation": 150 + 150, "test": 1120 + 638}
    test = loaded.splits["test"][:]
    assert Counter(test["label"]) == {0: 196, 1: 196, 2: 728, 3: 128, 4: 169, 5: 341}  # README counts
    assert "text_pair" in loaded.splits["train"].column_names
    assert "restaurant_sup" in source.name and len(source.local_files()) == 6


def test_multi_mixing_pairs_and_single_texts():
    with pytest.raises(UserError, match=r"mixes text-pair datasets \(restaurant_sup\) with single-text ones \(acl_sup\)") as e:
        MultiSource(["restaurant_sup", "acl_sup"], data_dir=D).load()
    assert "dataset.mixed_pairs=join" in e.value.fix
    loaded = MultiSource(["restaurant_sup", "acl_sup"], data_dir=D, mixed_pairs="join").load()
    assert sizes(loaded) == {"train": 3452 + 1688, "validation": 150 + 114, "test": 1120 + 139}
    assert loaded.splits["train"].column_names == ["text", "label"]
    train = loaded.splits["train"][:]
    assert " [SEP] " in train["text"][0] and train["label"][0] < 3
    assert Counter(train["label"][3452:]) == {3: 867, 4: 305, 5: 63, 6: 60, 7: 76, 8: 317}  # acl ids offset by 3
    assert loaded.task.label_names[3] == "acl_sup:Background"


def test_multi_refuses_unknown_duplicate_and_regression_parts(tmp_path, monkeypatch):
    with pytest.raises(InvalidChoice, match="dataset.parts='nope'") as e:
        MultiSource(["restaurant_sup", "nope"], data_dir=D)
    assert "acl_sup" in e.value.fix and "local" not in e.value.fix
    with pytest.raises(UserError, match="more than once"):
        MultiSource(["acl_sup", "acl_sup"], data_dir=D)
    from ftlab.config import CONF_DIR

    extra = tmp_path / "conf"  # a dataset config added as a user would (ftlab/config/location.py)
    (extra / "dataset").mkdir(parents=True)
    (extra / "dataset" / "stsb.yaml").write_text((Path(CONF_DIR) / "dataset" / "glue.yaml").read_text().replace("subset: sst2", "subset: stsb"))
    monkeypatch.setenv("FTLAB_CONFIG_PATH", str(extra))
    with pytest.raises(UserError, match="stsb is a regression dataset"):
        MultiSource(["acl_sup", "stsb"], data_dir=D)


def test_multi_config(compose):
    source = build(compose("dataset=multi", "dataset.parts=[acl_sup,restaurant_fs]", "dataset.mixed_pairs=join"), "dataset")
    assert source.task().num_labels == 9
    assert sizes(source.load())["train"] == 1688 + 16 * 3
    assert build(compose("dataset=multi"), "dataset").part_names == ["restaurant_sup", "laptop_sup"]


# ---- local ---------------------------------------------------------------------------------------
def write(path: Path, text: str | bytes) -> str:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


CSV_TRAIN = 'text,label,extra\n"good, really",pos,1\nbad,neg,2\n\n"multi\nline ok",pos,3\nmeh,neu,4\n'


def test_local_csv_round_trip(tmp_path):
    source = LocalSource(train=write(tmp_path / "train.csv", CSV_TRAIN), validation=write(tmp_path / "dev.csv", "text,label\nfine,pos\n"),
                         test=write(tmp_path / "test.csv", "label,text\nneg,awful\n"))
    loaded = source.load()
    assert loaded.task.label_names == ("neg", "neu", "pos") and loaded.task.task_type is TaskType.SINGLE_LABEL
    assert rows(loaded.splits["train"]) == [("good, really", 2), ("bad", 0), ("multi\nline ok", 2), ("meh", 1)]
    assert rows(loaded.splits["test"]) == [("awful", 0)]
    assert str(tmp_path / "train.csv") in loaded.origin


def test_local_tsv_pairs_and_label_names(tmp_path):
    train = write(tmp_path / "train.tsv", "a\tb\ty\nthe cat\tsat down\t1\nthe dog\tran\t0\n")
    test = write(tmp_path / "test.tab", "a\tb\ty\nx\tz\t0\n")
    source = LocalSource(train=train, validation=train, test=test, text_column="a", text_pair_column="b",
                         label_column="y", label_names=["1", "0"])
    loaded = source.load()
    assert loaded.task.label_names == ("1", "0")
    assert rows(loaded.splits["train"]) == [("the cat", "sat down", 0), ("the dog", "ran", 1)]


def test_local_jsonl_round_trip_numeric_labels_sorted_as_numbers(tmp_path):
    lines = [{"sentence": f"s{i}", "y": y} for i, y in enumerate([10, 2, "2", 0])]
    train = write(tmp_path / "train.jsonl", "\n".join(map(json.dumps, lines)) + "\n\n")
    test = write(tmp_path / "test.data", json.dumps({"sentence": "t", "y": 10}) + "\n")
    loaded = LocalSource(train=train, validation=train, test=test, format="jsonl", text_column="sentence", label_column="y").load()
    assert loaded.task.label_names == ("0", "2", "10")
    assert loaded.splits["train"][:]["label"] == [2, 1, 1, 0] and loaded.splits["test"][:]["label"] == [2]


def test_local_regression(tmp_path):
    train = write(tmp_path / "train.jsonl", '{"text": "a", "label": 0.5}\n{"text": "b", "label": "4"}\n')
    loaded = LocalSource(train=train, validation=train, test=train, task_type="regression").load()
    assert loaded.task.task_type is TaskType.REGRESSION and loaded.splits["train"][:]["label"] == [0.5, 4.0]
    bad = write(tmp_path / "bad.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": "high"}\n')
    with pytest.raises(MalformedRow, match=r"bad.jsonl, line 2: the label 'high' is not a number"):
        LocalSource(train=bad, test=train, task_type="regression").load()


def test_local_carves_validation_from_train_and_paths_are_relative_to_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "train.csv", "text,label\n" + "".join(f"t{i},{i % 2}\n" for i in range(20)))
    write(tmp_path / "test.csv", "text,label\nx,1\n")
    source = LocalSource(train="train.csv", test="./test.csv", validation_fraction=0.25)
    assert source.local_files() == [tmp_path / "train.csv", tmp_path / "test.csv"]
    first, again = source.load(), LocalSource(train="train.csv", test="test.csv", validation_fraction=0.25).load()
    assert sizes(first) == {"train": 15, "validation": 5, "test": 1}
    assert rows(first.splits["validation"]) == rows(again.splits["validation"])
    texts = first.splits["train"][:]["text"] + first.splits["validation"][:]["text"]
    assert sorted(texts) == sorted(f"t{i}" for i in range(20))
    before = source.fingerprint()
    assert LocalSource(train="train.csv", test="test.csv", validation_fraction=0.25).fingerprint() == before
    assert LocalSource(train="train.csv", test="test.csv", validation_fraction=0.25, split_seed=1).fingerprint() != before
    assert LocalSource(train="train.csv", test="test.csv", validation_fraction=0.25, validation="test.csv").fingerprint() != before
    write(tmp_path / "test.csv", "text,label\ny,1\n")
    assert source.fingerprint() != before  # the bytes of the files are part of the cache key


@pytest.mark.parametrize("name,files,kwargs,error,message,fix", [
    ("missing file", {}, {"test": "nowhere/test.csv"}, DataFileMissing,
     r"data file not found: .*nowhere/test.csv \(expected CSV with a header row naming the columns text, label\)", "dataset.test="),
    ("missing column", {"train.csv": "sentence,label\na,x\n"}, {}, UserError,
     r"train.csv has no column 'text'; columns present: sentence, label", "dataset.text_column"),
    ("missing jsonl column", {"train.jsonl": '{"text": "a", "lab": 1}\n'}, {"train": "train.jsonl"}, UserError,
     r"train.jsonl has no column 'label'; columns present: text, lab", "label_column"),
    ("wrong field count", {"train.csv": "text,label\na,x\nb,x,extra\n"}, {}, MalformedRow,
     r"train.csv, line 3: expected 2 fields \(as in the header\), found 3", "correct or remove that line"),
    ("bad json", {"train.jsonl": '{"text": "a", "label": 1}\n{"text": "b", label: 1}\n'}, {"train": "train.jsonl"},
     MalformedRow, r"train.jsonl, line 2: invalid JSON", "correct or remove that line"),
    ("bad quoting", {"train.csv": 'text,label\na,x\n"open,x\n'}, {}, MalformedRow, r"train.csv, line 3: bad CSV quoting", ""),
    ("unknown label", {"test.csv": "text,label\nok,x\nhm,z\n"}, {}, UnknownLabel,
     r"unknown label 'z' in .*test.csv, line 3", "known labels are: x, y"),
    ("label not in label_names", {}, {"label_names": ["x"]}, UnknownLabel, r"unknown label 'y' in .*train.csv, line 3", "x"),
    ("empty text", {"train.csv": "text,label\na,x\n  ,y\n"}, {}, MalformedRow, r"train.csv, line 3: text is empty", ""),
    ("empty label", {"train.csv": "text,label\na,x\nb,\n"}, {}, MalformedRow, r"train.csv, line 3: the label is empty", ""),
    ("empty split", {"test.csv": "text,label\n\n"}, {}, UserError, r"the test file .*test.csv has no data rows", "dataset.test"),
    ("empty file", {"test.csv": ""}, {}, UserError, r"test.csv is empty", "header row"),
    ("non-utf8", {"train.csv": b"text,label\na,x\ncaf\xe9,y\n"}, {}, MalformedRow,
     r"train.csv, line 3: not valid UTF-8 \(byte\(s\) e9\)", ""),
    ("one row, nothing to carve", {"train.csv": "text,label\na,y\n"}, {"validation": None}, UserError,
     r"train.csv has 1 row\(s\): too few to carve", "dataset.validation"),
])
def test_local_errors_name_the_problem_and_the_fix(tmp_path, monkeypatch, name, files, kwargs, error, message, fix):
    monkeypatch.chdir(tmp_path)
    good = {"train.csv": "text,label\na,x\nb,y\n", "dev.csv": "text,label\nc,x\n", "test.csv": "text,label\nd,y\n"}
    for file, content in {**good, **files}.items():
        write(tmp_path / file, content)
    args = {"train": "train.csv", "validation": "dev.csv", "test": "test.csv", **kwargs}
    with pytest.raises(error, match=message) as e:
        LocalSource(**args).load()
    assert fix in e.value.fix


def test_local_refuses_bad_settings(tmp_path, compose):
    train = write(tmp_path / "train.csv", "text,label\na,x\n")
    with pytest.raises(UserError, match="dataset.train is required"):
        build(compose("dataset=local"), "dataset")
    with pytest.raises(UserError, match="dataset.text_colum is not a setting"):
        build(compose("dataset=local", f"dataset.train={train}", f"dataset.test={train}", "+dataset.text_colum=x"), "dataset")
    with pytest.raises(UserError, match="dataset.test is required"):
        LocalSource(train=train)
    with pytest.raises(UserError, match=r"cannot tell the format of dataset.test=.*test.txt") as e:
        LocalSource(train=train, test=str(tmp_path / "test.txt"))
    assert "dataset.format=" in e.value.fix
    with pytest.raises(UserError, match=r"is a list of columns \(a, b\) but dataset.task_type=single_label"):
        LocalSource(train=train, test=train, label_column=["a", "b"])  # multi-label cases: test_multilabel_data.py
    with pytest.raises(InvalidChoice, match="dataset.task_type"):
        LocalSource(train=train, test=train, task_type="ranking")
    with pytest.raises(UserError, match="label_names is set for a regression"):
        LocalSource(train=train, test=train, task_type="regression", label_names=["a"])


def test_local_run_end_to_end(compose, tmp_path):
    from ftlab.run import run

    data = tmp_path / "data"
    data.mkdir()
    words = ["great", "awful", "fine"]
    train = write(data / "train.csv", "text,label\n" + "".join(f"this is {words[i % 3]} number {i},{words[i % 3]}\n" for i in range(60)))
    test = write(data / "test.jsonl", "".join(json.dumps({"text": f"{w} again", "label": w}) + "\n" for w in words))
    results = run(compose("dataset=local", f"dataset.train={train}", f"dataset.test={test}", "peft=full", "logger=none",
                          "save.model=false", "trainer.limit_train_batches=2"))
    assert results["status"] == "completed"
    assert results["task"]["label_names"] == ["awful", "fine", "great"]
    assert results["data"]["split_sizes"] == {"train": 54, "validation": 6, "test": 3}


def test_restaurant_fs_through_the_cli(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(*TINY, "dataset=restaurant_fs", "dataset.k=4", "logger=none", "save.model=false",
                   "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "completed"
    assert results["data"]["split_sizes"] == {"train": 12, "validation": 150, "test": 1120}
    assert results["choices"]["dataset"] == "restaurant_fs"
