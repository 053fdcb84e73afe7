"""The presets in experiments/: each one composes into the hyper-parameters of its study's table at
every point of its sweep, is documented, and runs (a tiny model, one batch: trainer.fast_dev_run)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from support.cli import REPO, TINY

EXPERIMENTS = REPO / "ftlab" / "conf" / "experiment"
SEEDS = "1,2,3,4,5"
GRID_MODELS = "roberta,bert,scibert"
GRID_DATASETS = "restaurant_sup,acl_sup,agnews_sup"
# study 000: batch size per (model, dataset), epochs per dataset
BATCH_000 = {"roberta": {"restaurant_sup": 256, "acl_sup": 128, "agnews_sup": 128},
             "bert": {"restaurant_sup": 256, "acl_sup": 64, "agnews_sup": 128},
             "scibert": {"restaurant_sup": 256, "acl_sup": 128, "agnews_sup": 64}}
EPOCHS_000 = {"restaurant_sup": 70, "acl_sup": 70, "agnews_sup": 35}
STUDY_002 = {"optimizer.lr": 5e-4, "optimizer.weight_decay": 0.01, "data.batch_size": 16,
             "trainer.accumulate_grad_batches": 4, "scheduler.warmup_steps": 100, "monitor": "val/accuracy"}
LORA_002 = {"peft.r": 2, "peft.alpha": 8, "peft.dropout": 0.01}
HOULSBY_001 = {"peft.reduction_factor": 16, "peft.non_linearity": "swish"}


def expect_000_full(point: dict) -> dict:
    model, dataset = point["model"], point["dataset"]
    return {"model.dropout": 0.3, "optimizer.lr": 9e-5, "optimizer.weight_decay": 0.01,
            "scheduler.warmup_steps": 70, "peft._target_": "ftlab.peft.full.FullFineTuning",
            "data.batch_size": BATCH_000[model][dataset], "trainer.max_epochs": EPOCHS_000[dataset]}


def expect_000_adapter(point: dict) -> dict:
    dataset = point["dataset"]
    return {"model.dropout": 0.3, "optimizer.lr": 9e-5, "optimizer.weight_decay": 0.01,
            "scheduler.warmup_steps": 70, "model.pretrained": "roberta-base",
            "peft._target_": "ftlab.peft.adapters.HoulsbyInjector", **HOULSBY_001,
            "data.batch_size": BATCH_000["roberta"][dataset], "trainer.max_epochs": EPOCHS_000[dataset]}


def expect_001_full(point: dict) -> dict:
    return {"optimizer.lr": 5e-5, "data.batch_size": 32, "trainer.max_epochs": 10,
            "peft._target_": "ftlab.peft.full.FullFineTuning"}


def expect_001_peft(point: dict) -> dict:
    method = {"houlsby": HOULSBY_001, "lora": {"peft.r": 32, "peft.alpha": 8, "peft.dropout": 0.0}}[point["peft"]]
    return {"optimizer.lr": 5e-4, "data.batch_size": 32, "trainer.max_epochs": 10,
            "model.pretrained": "roberta-base", **method}


def expect_002_glue(point: dict) -> dict:
    method = LORA_002 if point["peft"] == "lora" else {"peft._target_": "ftlab.peft.bitfit.BitFitInjector"}
    return {**STUDY_002, **method, "model.pretrained": "roberta-base",
            "trainer.max_epochs": {"rte": 25, "sst2": 3}[point["dataset.subset"]]}


def expect_002_rank(point: dict) -> dict:
    return {**STUDY_002, **LORA_002, "peft.r": int(point["peft.r"]),
            "trainer.max_epochs": {"rte": 25, "sst2": 3}[point["dataset.subset"]]}


def expect_003(point: dict) -> dict:
    method = {"zeroshot": {"peft._target_": "ftlab.peft.zeroshot.ZeroShot"},
              "lora": {"peft.r": 8, "peft.alpha": 16, "peft.dropout": 0.1, "peft.target_modules": ["q_lin", "v_lin"]},
              "pfeiffer": {"peft.reduction_factor": 16, "peft.non_linearity": "relu"}}[point["peft"]]
    return {"model.pretrained": "distilbert-base-uncased", "dataset.subset": "sentiment", "trainer.max_epochs": 3,
            "data.max_length": 128, "monitor": "val/accuracy", **method}


COMMON_004 = {"monitor": "val/macro_f1", "eval_every_n_steps": 20, "dataset.threshold": 0.5,
              "dataset._target_": "ftlab.data.sources.goemotions.GoEmotionsSource", "scheduler.warmup_steps": 0,
              "trainer.precision": "bf16-mixed", "trainer.gradient_clip_val": 1.0, "data.max_length": 128}
ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]


def expect_004_gemma_lora(point: dict) -> dict:
    return {**COMMON_004, "model.pretrained": "google/gemma-1.1-2b-it", "peft._target_": "ftlab.peft.lora.LoraInjector",
            "peft.r": 8, "peft.alpha": 8, "peft.dropout": 0.0, "peft.target_modules": ATTENTION,
            "optimizer._target_": "ftlab.models.optimizers.bnb_adamw", "optimizer.bits": 32, "optimizer.paged": True,
            "optimizer.lr": 5e-6, "optimizer.weight_decay": 0.1, "data.batch_size": 32, "trainer.max_epochs": 5}


def expect_004_gemma_ia3(point: dict) -> dict:
    return {**COMMON_004, "model.pretrained": "google/gemma-1.1-2b-it", "peft._target_": "ftlab.peft.ia3.IA3Injector",
            "peft.target_modules": ATTENTION, "peft.feedforward_modules": [], "optimizer._target_": "torch.optim.AdamW",
            "optimizer.lr": 5e-3, "optimizer.weight_decay": 0.001, "data.batch_size": 64, "trainer.max_epochs": 3}


def expect_004_qwen_qlora(point: dict) -> dict:
    return {**COMMON_004, "model.pretrained": "Alibaba-NLP/gte-Qwen1.5-7B-instruct",
            "peft._target_": "ftlab.peft.qlora.QLoraInjector", "peft.target_modules": ATTENTION,
            "peft.double_quant": True, "peft.compute_dtype": "bfloat16", "optimizer._target_": "torch.optim.AdamW",
            "optimizer.lr": 1e-4, "optimizer.weight_decay": 0.1, "data.batch_size": 8,
            "trainer.accumulate_grad_batches": 8, "trainer.max_epochs": 4}


# preset: (its sweep as hydra.sweeper.params, number of runs, the study's values at a point, tiny model)
PRESETS = {
    "study000_full_ft": ({"model": GRID_MODELS, "dataset": GRID_DATASETS, "seed": SEEDS}, 45, expect_000_full, "tiny_bert"),
    "study000_adapter": ({"dataset": GRID_DATASETS, "seed": SEEDS}, 15, expect_000_adapter, "tiny_bert"),
    "study001_full_ft": ({"model": GRID_MODELS, "dataset": GRID_DATASETS, "seed": SEEDS}, 45, expect_001_full, "tiny_bert"),
    "study001_peft": ({"peft": "houlsby,lora", "dataset": GRID_DATASETS, "seed": SEEDS}, 30, expect_001_peft, "tiny_bert"),
    "study002_glue": ({"peft": "bitfit,lora", "dataset.subset": "rte,sst2"}, 4, expect_002_glue, "tiny_bert"),
    "study002_lora_rank": ({"peft.r": "1,2,4,8,16,32,64", "dataset.subset": "rte,sst2"}, 14, expect_002_rank, "tiny_bert"),
    "study003_tweeteval": ({"peft": "zeroshot,lora,pfeiffer"}, 3, expect_003, "tiny_distilbert"),
    "study004_gemma_lora": ({}, 1, expect_004_gemma_lora, "tiny_gemma"),
    "study004_gemma_ia3": ({}, 1, expect_004_gemma_ia3, "tiny_gemma"),
    "study004_qwen_qlora": ({}, 1, expect_004_qwen_qlora, "tiny_qwen2"),
}


def compose_as_a_run(*overrides: str):
    """The config a job of a sweep gets, with `${hydra:...}` resolvable as in a real run (the compose
    API leaves HydraConfig unset); returns (config without `hydra`, hydra.sweeper.params)."""
    from ftlab.config import CONF_DIR
    from ftlab.config import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=["paths.output_dir=/nonexistent", *overrides],
                            return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.sweeper.params) if cfg.hydra.sweeper.params else {}
    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(cfg)
    try:
        job = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)
    finally:
        HydraConfig.instance().cfg = previous
    return job, params


def sweep_points(params: dict, skip=("seed",)) -> list[dict]:
    """The sweep's points as Hydra's basic sweeper expands them (every combination), seeds aside."""
    axes = [[(key, value) for value in str(values).split(",")] for key, values in params.items() if key not in skip]
    return [dict(point) for point in itertools.product(*axes)]


def select(cfg: dict, dotted: str):
    return OmegaConf.select(OmegaConf.create(cfg), dotted)


def same(got, value) -> bool:
    return got == pytest.approx(value) if isinstance(value, float) else got == value


def test_every_preset_is_covered():
    assert sorted(p.stem for p in EXPERIMENTS.glob("*.yaml")) == sorted(PRESETS)
    methods = {p.stem for p in (EXPERIMENTS / "methods").glob("*.yaml")}
    orphans = {m for m in methods if not any(m.startswith(f"{name}_") for name in PRESETS)}
    assert not orphans, f"method settings of no preset: {orphans}"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_is_the_studys_table(name):
    """Its sweep is the table (every point, seeds aside), each point with the study's values;
    per-pair values looked up through `${hydra:runtime.choices...}` resolve as in a run."""
    sweep, runs, expected, _ = PRESETS[name]
    _, params = compose_as_a_run(f"experiment={name}")
    assert {k: str(v) for k, v in params.items()} == sweep
    assert len(list(itertools.product(*[str(v).split(",") for v in sweep.values()]))) == runs
    for point in sweep_points(sweep):
        cfg, _ = compose_as_a_run(f"experiment={name}", *(f"{k}={v}" for k, v in point.items()))
        for key, value in expected(point).items():
            got = select(cfg, key)
            assert same(got, value), (point, key, got, value)


def test_command_line_overrides_win_over_the_preset():
    cfg, _ = compose_as_a_run("experiment=study000_full_ft", "model=bert", "dataset=acl_sup",
                              "optimizer.lr=1e-5", "data.batch_size=8", "model.dropout=0.1")
    assert (cfg["optimizer"]["lr"], cfg["data"]["batch_size"], cfg["model"]["dropout"]) == (1e-5, 8, 0.1)
    assert cfg["model"]["pretrained"] == "bert-base-uncased"
    # another method than the preset's: its own defaults, none of the preset's method settings
    cfg, _ = compose_as_a_run("experiment=study002_glue", "peft=houlsby")
    assert cfg["peft"]["reduction_factor"] == 16 and "r" not in cfg["peft"]
    # a pair outside the study's table falls back to the documented defaults
    cfg, _ = compose_as_a_run("experiment=study000_full_ft", "model=minilm", "dataset=laptop_sup")
    assert (cfg["data"]["batch_size"], cfg["trainer"]["max_epochs"]) == (128, 70)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_a_chosen_model_replaces_the_presets_model_whole(name):
    """A preset names its backbone through the model group, never as model.pretrained, so that
    `experiment=<preset> model=<choice>` trains the choice's weights, not the study's."""
    cfg, _ = compose_as_a_run(f"experiment={name}", "model=tiny_gemma")
    tiny, _ = compose_as_a_run("model=tiny_gemma")
    assert cfg["model"]["pretrained"] == tiny["model"]["pretrained"], name


def test_no_preset_changes_a_plain_run():
    plain, params = compose_as_a_run()
    assert not params and "study" not in plain


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_is_documented(name):
    text = (EXPERIMENTS / f"{name}.yaml").read_text()
    header = text.split("\ndefaults:")[0]
    study = header.split("../shared/studies/")[1].split(")")[0]
    assert (REPO.parent / "shared" / "studies" / study).is_file(), study
    for needed in (f"python -m ftlab -m experiment={name}", "Hyper-parameters", "Expected time", "Reported"):
        assert needed in header, f"{name}: header lacks {needed!r}"
    assert f"`{name}`" in (REPO / "experiments" / "README.md").read_text()


def tiny_saved(compose, tiny: str, tmp_path: Path) -> Path:
    from transformers import AutoModel

    from ftlab.config import build
    from ftlab.data.task import classification

    backbone = build(compose(f"model={tiny}"), "model")
    folder = tmp_path / "pretrained"
    AutoModel.from_config(backbone.model_config(classification(["a", "b"]), backbone.load_tokenizer())).save_pretrained(folder)
    return folder


def smoke_points():
    """One run per preset and PEFT method of its sweep, at the sweep's first point."""
    for name, (sweep, *_rest) in sorted(PRESETS.items()):
        for method in sweep["peft"].split(",") if "peft" in sweep else [None]:
            yield pytest.param(name, method, id=f"{name}-{method}" if method else name)


@pytest.mark.parametrize(("name", "method"), list(smoke_points()))
def test_preset_runs(compose, name, method, tmp_path):
    """Composed as the tests' compose fixture does (no HydraConfig): the tiny overrides replace the
    per-pair lookups, and everything else of the preset resolves and trains."""
    from ftlab.run import run

    sweep, _, expected, tiny = PRESETS[name]
    point = {key: values.split(",")[0] for key, values in sweep.items() if key != "seed"}
    if method:
        point["peft"] = method
    at_point = [f"{k}={v}" for k, v in point.items() if k != "model"]
    if name == "study004_qwen_qlora":  # 4-bit loading needs saved weights: a tiny Qwen2 saved as "pretrained"
        at_point += [f"model.pretrained={tiny_saved(compose, tiny, tmp_path)}", "peft.compute_dtype=float32"]
    tiny_but_precision = [o for o in TINY if not o.startswith("trainer.precision")]  # the preset's own stays
    cfg = compose(*tiny_but_precision, f"experiment={name}", *at_point, f"model={tiny}", "trainer.fast_dev_run=true",
                  "save.model=false", tiny=False)
    results = run(cfg)
    assert results["status"] == "completed"
    assert json.loads((Path(cfg.paths.output_dir) / "results.json").read_text())["status"] == "completed"
    for key, value in expected(point).items():
        if key in ("data.batch_size", "trainer.max_epochs", "model.pretrained", "peft.compute_dtype"):
            continue  # the tiny overrides' values
        got = select(results["config"], key)
        assert same(got, value), (key, got, value)
