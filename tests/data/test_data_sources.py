"""Dataset sources against the real shared data (counts and labels from shared/data/README.md), and their
errors on small broken copies under tmp_path."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # hub fallbacks must fail fast, never download
os.environ["HF_DATASETS_OFFLINE"] = "1"

import shutil
from collections import Counter
from functools import cache
from pathlib import Path

import datasets
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ftlab.data.sources import AclArcSource, AgNewsSource, GlueSource, SemEvalAbsaSource, TweetEvalSource
from ftlab.data.sources import agnews as agnews_mod
from ftlab.data.sources import glue as glue_mod
from ftlab.data.sources import tweeteval as tweeteval_mod
from ftlab.data.task import TaskType
from ftlab.errors import DataFileMissing, InvalidChoice, MalformedRow, UnknownLabel, UserError

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("FTLAB_DATA_DIR") or Path(__file__).resolve().parents[3] / "shared" / "data")


@pytest.fixture(scope="module", autouse=True)
def _offline():
    """The env vars above are read when `datasets` is first imported; patch the constants in case it already was."""
    import huggingface_hub.constants

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datasets.config, "HF_HUB_OFFLINE", True)
        mp.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        yield


@pytest.fixture(scope="module")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"shared data not found at {DATA} (set FTLAB_DATA_DIR)")
    return DATA


@cache
def load(cls, **kwargs):
    """Each real dataset is parsed once for the whole module (tweeteval emoji/sentiment are the big ones)."""
    return cls(str(DATA), **kwargs).load()


def sizes(loaded) -> tuple[int, int, int]:
    return tuple(len(loaded.splits[s]) for s in ("train", "validation", "test"))


def col(ds: datasets.Dataset, name: str) -> list:
    """A column as a list (iterating a lazy `Column` row by row is slow on 67k rows)."""
    return ds[:][name]


def label_counts(ds: datasets.Dataset) -> dict[int, int]:
    return dict(Counter(col(ds, "label")))


def rows(ds: datasets.Dataset) -> Counter:
    columns = ds[:]
    return Counter(zip(*(columns[c] for c in ds.column_names)))


def copy_real(dst_root: Path, *rels: str) -> Path:
    for rel in rels:
        (dst_root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DATA / rel, dst_root / rel)
    return dst_root


def set_line(path: Path, line_no: int, content: str | bytes) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[line_no - 1] = content if isinstance(content, bytes) else content.encode()
    path.write_bytes(b"\n".join(lines))


# ---------------------------------------------------------------------------------------------------------
# real data
# ---------------------------------------------------------------------------------------------------------
ABSA = {  # split: {id: count} with 0 negative, 1 neutral, 2 positive
    "restaurant": {"train": {0: 779, 1: 579, 2: 2094}, "validation": {0: 26, 1: 54, 2: 70}, "test": {0: 196, 1: 196, 2: 728}},
    "laptop": {"train": {0: 800, 1: 433, 2: 930}, "validation": {0: 66, 1: 27, 2: 57}, "test": {0: 128, 1: 169, 2: 341}},
}


@pytest.mark.parametrize("domain", ["restaurant", "laptop"])
def test_absa_counts_labels_and_pair_input(data_dir, domain):
    loaded = load(SemEvalAbsaSource, domain=domain)
    assert sizes(loaded) == {"restaurant": (3452, 150, 1120), "laptop": (2163, 150, 638)}[domain]
    assert loaded.task.label_names == ("negative", "neutral", "positive")
    assert loaded.task.task_type is TaskType.SINGLE_LABEL
    for split, counts in ABSA[domain].items():
        assert label_counts(loaded.splits[split]) == counts
    train = loaded.splits["train"]
    assert train.column_names == ["text", "text_pair", "label"]
    assert train.features["label"] == datasets.Value("int64")
    # text = aspect term, text_pair = the sentence that contains it
    assert all(t in s and len(t) < len(s) for t, s in zip(col(train, "text"), col(train, "text_pair")))


def test_absa_restaurant_first_dev_record(data_dir):
    dev = load(SemEvalAbsaSource, domain="restaurant").splits["validation"]
    assert dev[0] == {
        "text": "bottle of sake",
        "text_pair": "We shared a bottle of sake, an order of edamames, and she had the sushi plate while I had the sashimi.",
        "label": 1,
    }


def test_acl_counts_and_labels(data_dir):
    loaded = load(AclArcSource)
    assert sizes(loaded) == (1688, 114, 139)
    names = loaded.task.label_names
    assert names == ("Background", "CompareOrContrast", "Extends", "Future", "Motivation", "Uses")
    by_name = {names[i]: n for i, n in label_counts(loaded.splits["train"]).items()}
    assert by_name == {"Background": 867, "Uses": 317, "CompareOrContrast": 305, "Motivation": 76, "Extends": 63, "Future": 60}
    test = {names[i]: n for i, n in label_counts(loaded.splits["test"]).items()}
    assert test == {"Background": 71, "Uses": 26, "CompareOrContrast": 25, "Motivation": 7, "Extends": 5, "Future": 5}
    assert loaded.splits["train"].column_names == ["text", "label"]


def test_agnews_split_is_the_studies_split(data_dir):
    loaded = load(AgNewsSource)
    train, val, test = sizes(loaded)
    assert (train + val, test) == (6840, 760)
    assert val == 684
    assert loaded.task.label_names == ("World", "Sports", "Business", "Sci/Tech")
    # every row lands in exactly one split
    all_rows = rows(agnews_mod.parse_file(DATA / "agnews_sup" / "test.csv", "description"))
    assert sum(all_rows.values()) == 7600
    assert Counter({0: 1900, 1: 1900, 2: 1900, 3: 1900}) == Counter(label for _, label in all_rows.elements())
    assert sum((rows(loaded.splits[s]) for s in ("train", "validation", "test")), Counter()) == all_rows
    # the test part is what HF's train_test_split(test_size=0.1, seed=2022) picks from the rows in file order
    picked = datasets.Dataset.from_dict({"i": list(range(7600))}).train_test_split(test_size=0.1, seed=2022)["test"]["i"]
    in_order = col(agnews_mod.parse_file(DATA / "agnews_sup" / "test.csv", "description"), "text")
    assert col(loaded.splits["test"], "text") == [in_order[i] for i in picked]
    # deterministic
    again = AgNewsSource(str(DATA)).load()
    for s in ("train", "validation", "test"):
        assert col(again.splits[s], "text") == col(loaded.splits[s], "text")


def test_agnews_text_fields(data_dir):
    desc = load(AgNewsSource, text_fields="description")
    both = load(AgNewsSource, text_fields="title_description")
    for split in ("train", "validation", "test"):
        d, b = desc.splits[split][:], both.splits[split][:]
        assert d["label"] == b["label"]
        assert all(full.endswith(" " + short) and len(full) > len(short) + 1 for full, short in zip(b["text"], d["text"]))
        assert not any("\\" in t for t in b["text"])  # literal backslashes (newlines) are gone
    assert both.splits["test"][0]["text"] != desc.splits["test"][0]["text"]
    assert AgNewsSource(str(DATA)).fingerprint() != AgNewsSource(str(DATA), text_fields="title_description").fingerprint()


TWEETEVAL = {  # train, val, test, number of labels
    "sentiment": (45615, 2000, 12284, 3),
    "emoji": (45000, 5000, 50000, 20),
    "emotion": (3257, 374, 1421, 4),
    "hate": (9000, 1000, 2970, 2),
    "irony": (2862, 955, 784, 2),
    "offensive": (11916, 1324, 860, 2),
    "stance_abortion": (587, 66, 280, 3),
    "stance_atheism": (461, 52, 220, 3),
    "stance_climate": (355, 40, 169, 3),
    "stance_feminist": (597, 67, 285, 3),
    "stance_hillary": (620, 69, 295, 3),
}


@pytest.mark.parametrize("subset", list(TWEETEVAL))
def test_tweeteval_all_tasks(data_dir, subset):
    *expected, n_labels = TWEETEVAL[subset]
    loaded = load(TweetEvalSource, subset=subset)
    assert sizes(loaded) == tuple(expected)
    names = loaded.task.label_names
    assert len(names) == n_labels and len(set(names)) == n_labels
    assert names == tweeteval_mod.LABELS[subset]  # the built-in names (hub fallback) agree with mapping.txt
    for split in ("train", "validation", "test"):
        ds = loaded.splits[split]
        assert ds.column_names == ["text", "label"]
        assert set(col(ds, "label")) <= set(range(n_labels))
        assert not any(t != t.strip() for t in col(ds, "text"))
    assert set(col(loaded.splits["train"], "label")) == set(range(n_labels))
    if subset.startswith("stance_"):
        assert names == ("none", "against", "favor")
    if subset == "sentiment":
        assert names == ("negative", "neutral", "positive")
    if subset == "hate":  # the original files have empty tweets; they are kept, with their labels
        assert col(loaded.splits["train"], "text").count("") == 7
        assert col(loaded.splits["validation"], "text").count("") == 1


def test_tweeteval_sentiment_matches_hub_parquet(data_dir):
    """The original val/test (trailing spaces stripped) and the rebuilt train equal the HF export."""
    import pyarrow.parquet as pq

    loaded = load(TweetEvalSource, subset="sentiment")
    for split in ("train", "validation", "test"):
        hub = pq.read_table(DATA / "tweeteval" / "hf_parquet" / "sentiment" / f"{split}.parquet").to_pydict()
        assert col(loaded.splits[split], "text") == hub["text"]
        assert col(loaded.splits[split], "label") == hub["label"]


GLUE = {  # train file rows, dev rows, train label counts, dev label counts (README)
    "cola": (8551, 1043, {0: 2528, 1: 6023}, {0: 322, 1: 721}),
    "sst2": (67349, 872, {0: 29780, 1: 37569}, {0: 428, 1: 444}),
    "mrpc": (3668, 408, {0: 1194, 1: 2474}, {0: 129, 1: 279}),
    "stsb": (5749, 1500, None, None),
    "rte": (2490, 277, {0: 1249, 1: 1241}, {0: 146, 1: 131}),
    "wnli": (635, 71, None, None),
}


@pytest.mark.parametrize("subset", list(GLUE))
def test_glue_subsets(data_dir, subset):
    n_train, n_dev, train_counts, dev_counts = GLUE[subset]
    loaded = load(GlueSource, subset=subset)
    train, val, test = (loaded.splits[s] for s in ("train", "validation", "test"))
    assert len(train) + len(val) == n_train and len(test) == n_dev
    assert len(val) == pytest.approx(0.1 * n_train, abs=1)
    # validation is carved from train.tsv: together they are exactly the file's rows
    folder = DATA / "glue" / glue_mod.TASKS[subset].folder
    assert rows(train) + rows(val) == rows(glue_mod.parse_file(folder / "train.tsv", glue_mod.TASKS[subset]))
    pair = subset not in ("cola", "sst2")
    assert train.column_names == (["text", "text_pair", "label"] if pair else ["text", "label"])
    if subset == "stsb":
        assert loaded.task.task_type is TaskType.REGRESSION and loaded.task.num_labels == 1
        assert train.features["label"] == datasets.Value("float32")
        assert set(loaded.task.extra_metrics) == {"pearson", "spearman"}
        assert all(0.0 <= x <= 5.0 for x in col(train, "label") + col(test, "label"))
        assert test[0] == {"text": "A man with a hard hat is dancing.", "text_pair": "A man wearing a hard hat is dancing.", "label": 5.0}
    else:
        assert train.features["label"] == datasets.Value("int64")
        if train_counts is not None:
            assert Counter(col(train, "label")) + Counter(col(val, "label")) == Counter(train_counts)
            assert label_counts(test) == dev_counts
    expected_names = {
        "cola": ("unacceptable", "acceptable"), "sst2": ("negative", "positive"),
        "mrpc": ("not_equivalent", "equivalent"), "rte": ("entailment", "not_entailment"),
        "wnli": ("not_entailment", "entailment"), "stsb": ("score",),
    }[subset]
    assert loaded.task.label_names == expected_names
    if subset == "cola":
        assert loaded.task.extra_metrics == ("mcc",) and loaded.task.monitor == "val/mcc"
    if subset == "mrpc":
        assert loaded.task.extra_metrics == ("f1",)
    # deterministic across loads
    again = GlueSource(str(DATA), subset=subset).load()
    for s in ("train", "validation", "test"):
        assert col(again.splits[s], "text") == col(loaded.splits[s], "text")


def test_glue_quotes_are_kept_verbatim(data_dir):
    """MRPC texts have unbalanced `"`: no quote processing may merge or alter rows."""
    test = load(GlueSource, subset="mrpc").splits["test"]
    assert test[0]["text_pair"] == '" The foodservice pie business does not fit our long-term growth strategy .'
    assert test[0]["label"] == 1


def test_glue_qnli_dev_parses_but_train_is_missing(data_dir):
    spec = glue_mod.TASKS["qnli"]
    dev = glue_mod.parse_file(DATA / "glue" / "QNLI" / "dev.tsv", spec)
    assert len(dev) == 5463 and label_counts(dev) == {0: 2702, 1: 2761}
    with pytest.raises(DataFileMissing) as err:
        GlueSource(str(DATA), subset="qnli").load()
    assert "glue/QNLI/train.tsv" in str(err.value) and "only QNLI dev.tsv" in str(err.value)


@pytest.mark.parametrize("name", ["restaurant_sup", "laptop_sup", "acl_sup", "agnews_sup", "tweeteval", "glue"])
def test_configs_instantiate(name):
    node = OmegaConf.load(REPO / "ftlab" / "conf" / "dataset" / f"{name}.yaml")
    cfg = OmegaConf.create({"paths": {"data_dir": str(DATA)}, "dataset": node})
    source = instantiate(cfg.dataset)
    assert source.data_dir == DATA.resolve()
    assert source.local_files() and all(str(p).startswith(str(DATA.resolve())) for p in source.local_files())


# ---------------------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda d: SemEvalAbsaSource(d, domain="laptop"), "laptop_sup/SemEval14-laptop/train.json"),
        (lambda d: AclArcSource(d), "acl_sup/train.jsonl"),
        (lambda d: AgNewsSource(d), "agnews_sup/test.csv"),
        (lambda d: TweetEvalSource(d, subset="stance_climate"), "tweeteval/datasets/stance/climate/train_text.txt"),
        (lambda d: GlueSource(d, subset="rte"), "glue/RTE/train.tsv"),
    ],
)
def test_missing_files(tmp_path, make, expected):
    with pytest.raises(DataFileMissing) as err:
        make(str(tmp_path)).load()
    assert str(tmp_path / expected) in str(err.value)


def test_missing_one_file_of_several(tmp_path, data_dir):
    rel = "restaurant_sup/SemEval14-res"
    copy_real(tmp_path, f"{rel}/train.json", f"{rel}/dev.json")
    with pytest.raises(DataFileMissing, match="test_full.json"):
        SemEvalAbsaSource(str(tmp_path)).load()
    copy_real(tmp_path, "tweeteval/datasets/stance/climate/train_text.txt")
    with pytest.raises(DataFileMissing, match="train_labels.txt"):
        TweetEvalSource(str(tmp_path), subset="stance_climate").load()


def _absa_copy(tmp_path: Path) -> tuple[Path, Path]:
    rel = "laptop_sup/SemEval14-laptop"
    copy_real(tmp_path, *(f"{rel}/{f}" for f in ("train.json", "dev.json", "test_full.json")))
    return tmp_path, tmp_path / rel / "dev.json"


def test_absa_malformed_json_and_records(tmp_path, data_dir):
    root, dev = _absa_copy(tmp_path)
    original = dev.read_text(encoding="utf-8")
    dev.write_text(original.replace('"contra"', "contra", 1), encoding="utf-8")  # line 3
    with pytest.raises(MalformedRow, match=r"dev\.json, line 3: invalid JSON"):
        SemEvalAbsaSource(str(root), domain="laptop").load()
    # a record without its term: the error points at the record's line
    dev.write_text(original.replace('"term"', '"aspect"', 1), encoding="utf-8")
    with pytest.raises(MalformedRow, match=r"dev\.json, line 2: record .* has no 'term'"):
        SemEvalAbsaSource(str(root), domain="laptop").load()


def test_absa_unknown_label_and_line(tmp_path, data_dir):
    root, dev = _absa_copy(tmp_path)
    text = dev.read_text(encoding="utf-8")
    # the 3rd record becomes "conflict"
    starts = [i for i, line in enumerate(text.split("\n"), start=1) if line.startswith('    "')]
    lines = text.split("\n")
    pol = next(i for i in range(starts[2], len(lines)) if '"polarity"' in lines[i])
    lines[pol] = '        "polarity": "conflict", '
    dev.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(UnknownLabel) as err:
        SemEvalAbsaSource(str(root), domain="laptop").load()
    assert f"dev.json, line {starts[2]}" in str(err.value)
    assert "'conflict'" in str(err.value) and "negative, neutral, positive" in str(err.value)


def test_absa_invalid_domain():
    with pytest.raises(InvalidChoice, match="restaurant, laptop"):
        SemEvalAbsaSource("/nowhere", domain="hotel")


def _acl_copy(tmp_path: Path) -> Path:
    copy_real(tmp_path, "acl_sup/train.jsonl", "acl_sup/dev.jsonl", "acl_sup/test.jsonl")
    return tmp_path / "acl_sup" / "dev.jsonl"


@pytest.mark.parametrize(
    "line, error, pattern",
    [
        ('{"text": "a citation", "label": "Background"', MalformedRow, r"dev\.jsonl, line 3: invalid JSON"),
        ('["a citation", "Background"]', MalformedRow, r"dev\.jsonl, line 3: the line is not a JSON object"),
        ('{"text": "   ", "label": "Uses"}', MalformedRow, r"dev\.jsonl, line 3: text is empty"),
        ('{"label": "Uses"}', MalformedRow, r"dev\.jsonl, line 3: no 'text' field"),
        ('{"text": "a citation", "label": "Method"}', UnknownLabel, r"'Method' in .*dev\.jsonl, line 3"),
    ],
)
def test_acl_row_errors(tmp_path, data_dir, line, error, pattern):
    dev = _acl_copy(tmp_path)
    set_line(dev, 3, line)
    with pytest.raises(error, match=pattern) as err:
        AclArcSource(str(tmp_path)).load()
    if error is UnknownLabel:
        assert "Background, CompareOrContrast, Extends, Future, Motivation, Uses" in str(err.value)


def test_non_utf8_bytes(tmp_path, data_dir):
    dev = _acl_copy(tmp_path)
    set_line(dev, 5, b'{"text": "caf\xe9", "label": "Uses"}')
    with pytest.raises(MalformedRow, match=r"dev\.jsonl, line 5: not valid UTF-8"):
        AclArcSource(str(tmp_path)).load()
    # same for a TSV and a line-per-tweet file
    copy_real(tmp_path, "glue/WNLI/train.tsv", "glue/WNLI/dev.tsv")
    set_line(tmp_path / "glue/WNLI/train.tsv", 7, b"6\tbad \xff\xfe bytes\tok\t1")
    with pytest.raises(MalformedRow, match=r"train\.tsv, line 7: not valid UTF-8"):
        GlueSource(str(tmp_path), subset="wnli").load()
    # after a UTF-8 BOM (MRPC) the line is still counted from the start of the file
    dev = _glue_copy(tmp_path, "MRPC") / "dev.tsv"
    set_line(dev, 3, b"0\t1\t2\tbad \xc3\x28 byte\tfine")
    with pytest.raises(MalformedRow, match=r"dev\.tsv, line 3: not valid UTF-8 \(byte\(s\) c3\)"):
        GlueSource(str(tmp_path), subset="mrpc").load()


def _tweeteval_copy(tmp_path: Path, task: str = "stance/climate") -> Path:
    base = f"tweeteval/datasets/{task}"
    names = [f"{s}_{k}.txt" for s in ("train", "val", "test") for k in ("text", "labels")]
    copy_real(tmp_path, *(f"{base}/{n}" for n in names), "tweeteval/datasets/stance/mapping.txt")
    return tmp_path / base


def test_tweeteval_line_count_mismatch(tmp_path, data_dir):
    folder = _tweeteval_copy(tmp_path)
    labels = folder / "val_labels.txt"
    labels.write_bytes(labels.read_bytes() + b"0\n")
    with pytest.raises(UserError) as err:
        TweetEvalSource(str(tmp_path), subset="stance_climate").load()
    message = str(err.value)
    assert "val_text.txt has 40 lines" in message and "val_labels.txt has 41" in message


def test_tweeteval_unknown_label(tmp_path, data_dir):
    folder = _tweeteval_copy(tmp_path)
    set_line(folder / "test_labels.txt", 4, "3")
    with pytest.raises(UnknownLabel) as err:
        TweetEvalSource(str(tmp_path), subset="stance_climate").load()
    assert "'3' in" in str(err.value) and "test_labels.txt, line 4" in str(err.value)
    assert "0 (none), 1 (against), 2 (favor)" in str(err.value)


def test_tweeteval_invalid_subset():
    with pytest.raises(InvalidChoice) as err:
        TweetEvalSource("/nowhere", subset="stance")
    for subset in TWEETEVAL:
        assert subset in str(err.value)


def _glue_copy(tmp_path: Path, folder: str) -> Path:
    copy_real(tmp_path, f"glue/{folder}/train.tsv", f"glue/{folder}/dev.tsv")
    return tmp_path / "glue" / folder


@pytest.mark.parametrize(
    "subset, folder, line_no, line, error, pattern",
    [
        ("rte", "RTE", 4, "2\tonly two columns", MalformedRow, r"train\.tsv, line 4: expected 4 tab-separated columns, found 2"),
        ("rte", "RTE", 4, "2\tA premise.\tA hypothesis.\tneutral", UnknownLabel, r"'neutral' in .*train\.tsv, line 4"),
        ("rte", "RTE", 1, "idx\tsentence1\tsentence2\tlabel", MalformedRow, r"train\.tsv, line 1: expected the header"),
        ("cola", "CoLA", 10, "gj04\t1\t\t ", MalformedRow, r"train\.tsv, line 10: text is empty"),
        ("stsb", "STS-B", 3, "1\tg\tf\ty\t0\tn\tn\tA.\tB.\tfive", MalformedRow, r"train\.tsv, line 3: score 'five'"),
        ("stsb", "STS-B", 3, "1\tg\tf\ty\t0\tn\tn\tA.\tB.\t7.5", MalformedRow, r"line 3: score 7.5 is outside 0-5"),
        ("sst2", "SST-2", 2, 'a "quoted\tsentence\t1', MalformedRow, r"line 2: expected 2 tab-separated columns, found 3"),
    ],
)
def test_glue_row_errors(tmp_path, data_dir, subset, folder, line_no, line, error, pattern):
    set_line(_glue_copy(tmp_path, folder) / "train.tsv", line_no, line)
    with pytest.raises(error, match=pattern) as err:
        GlueSource(str(tmp_path), subset=subset).load()
    if error is UnknownLabel:
        assert "entailment, not_entailment" in str(err.value)


def test_glue_invalid_subset():
    with pytest.raises(InvalidChoice, match="sst2, rte, mrpc, cola, stsb, wnli, qnli"):
        GlueSource("/nowhere", subset="mnli")


def test_agnews_errors(tmp_path, data_dir):
    copy_real(tmp_path, "agnews_sup/test.csv")
    csv_path = tmp_path / "agnews_sup" / "test.csv"
    set_line(csv_path, 6, '"5","A title","A description."')
    with pytest.raises(UnknownLabel) as err:
        AgNewsSource(str(tmp_path)).load()
    assert "test.csv, line 6" in str(err.value) and "1 (World), 2 (Sports), 3 (Business), 4 (Sci/Tech)" in str(err.value)
    set_line(csv_path, 6, '"2","A title"')
    with pytest.raises(MalformedRow, match=r"test\.csv, line 6: expected 3 columns, found 2"):
        AgNewsSource(str(tmp_path)).load()
    set_line(csv_path, 6, '"2","A title","  \\\\ "')
    with pytest.raises(MalformedRow, match=r"test\.csv, line 6: description is empty"):
        AgNewsSource(str(tmp_path)).load()
    with pytest.raises(InvalidChoice, match="description, title_description"):
        AgNewsSource(str(tmp_path), text_fields="body")
