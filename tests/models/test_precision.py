"""trainer.precision=auto (ftlab/precision.py): bf16-mixed where the CPU (AMX-BF16, AVX512-BF16) or
the GPU (compute capability >= 8.0) multiplies bf16 natively, 32-true elsewhere; resolved before
anything is built, recorded in results.json, and predictions made in the precision the run used."""

from __future__ import annotations

import json

import pytest

from support.cli import TINY, run_cli
from ftlab import precision
from ftlab.config import group_options


@pytest.mark.parametrize("flags, expected, says", [
    ({"avx2", "amx_bf16", "avx512_bf16"}, "bf16-mixed", "CPU with AMX-BF16 and AVX512-BF16"),
    ({"avx2", "avx512_bf16"}, "bf16-mixed", "CPU with AVX512-BF16"),
    ({"avx2", "avx512f"}, "32-true", "CPU without AMX-BF16 or AVX512-BF16"),
    (set(), "32-true", "CPU without"),
])
def test_auto_follows_the_cpu(monkeypatch, flags, expected, says):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
    picked, why = precision.resolve("auto", "cpu")
    assert picked == expected and says in why


@pytest.mark.parametrize("chosen", ["32-true", "bf16-mixed", "16-mixed", "bf16-true"])
def test_a_chosen_precision_is_kept(monkeypatch, chosen):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    assert precision.resolve(chosen, "cpu") == (chosen, "chosen in the config")


@pytest.mark.parametrize("flags, chosen, warned", [
    ({"avx2"}, "bf16-mixed", True),
    ({"avx2"}, "bf16-true", True),
    ({"avx2"}, "32-true", False),
    ({"avx2", "amx_bf16"}, "bf16-mixed", False),
])
def test_bf16_chosen_where_it_is_emulated_is_kept_with_a_warning(monkeypatch, compose, caplog, flags, chosen, warned):
    from ftlab.config import checked

    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
    with caplog.at_level("WARNING", logger="ftlab.config.checks"):
        cfg = checked(compose(f"trainer.precision={chosen}"))
    assert cfg.trainer.precision == chosen
    said = [r.getMessage() for r in caplog.records if "slower than in fp32" in r.getMessage()]
    assert bool(said) == warned, caplog.text
    if warned:
        assert said[0].startswith(f"trainer.precision={chosen} on a CPU without AMX-BF16") and "precision=auto" in said[0]


def test_the_machine_flags_are_read():
    flags = precision.cpu_flags()
    assert isinstance(flags, frozenset) and ("fpu" in flags or not flags)  # Linux lists fpu; elsewhere none


def test_the_config_check_resolves_auto_in_place(compose):
    from ftlab.config import checked

    cfg = checked(compose("trainer.precision=auto"))
    assert cfg.trainer.precision == precision.resolve("auto", "cpu")[0]


MEASURED_AUTO = {"full", "lora"}  # bench/results/precision_parity-2026-12-0[12].md; houlsby measured, differs: 32-true


@pytest.mark.parametrize("method", group_options("peft"))  # every method conf/peft/ ships
def test_only_the_methods_measured_at_parity_ship_auto_and_a_chosen_precision_wins(compose, method):
    untiny = [o for o in TINY if not o.startswith("trainer.precision")]
    shipped = compose(*untiny, f"peft={method}", tiny=False).trainer.precision
    assert shipped == ("auto" if method in MEASURED_AUTO else "32-true")
    assert compose(*untiny, f"peft={method}", "trainer.precision=32-true", tiny=False).trainer.precision == "32-true"
    assert compose(*untiny, f"peft={method}", "trainer=ddp", tiny=False).trainer.precision == shipped


@pytest.fixture(scope="module")
def auto_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("precision") / "run"
    proc = run_cli(*TINY, "dataset=acl_sup", "trainer.precision=auto", "logger=none", "save.export=true",
                   f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def test_an_auto_run_records_what_it_used_and_why(auto_run):
    results = json.loads((auto_run / "results.json").read_text())
    picked, why = precision.resolve("auto", "cpu")
    assert results["config"]["trainer"]["precision"] == picked
    assert results["precision"] == {"used": picked, "auto_picks": picked, "why": why}
    assert f"trainer.precision=auto: {picked}" in (auto_run / "ftlab.log").read_text()


def test_load_predicts_in_the_precision_the_run_was_tested_in(auto_run):
    import ftlab
    from ftlab import predictions

    rows = predictions.load(auto_run, "test")
    classifier = ftlab.load(auto_run, threads=1)
    assert classifier.precision == precision.resolve("auto", "cpu")[0]
    got = classifier.predict([r["text"] for r in rows])
    assert [g["label_id"] for g in got] == [r["pred"] for r in rows]
    for g, r in zip(got, rows):
        assert list(g["probs"].values()) == pytest.approx(r["probs"], abs=2e-3)  # bf16: ~3 significant digits
