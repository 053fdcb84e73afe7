"""The Python API as a user's script calls it (a subprocess: a fresh interpreter, as a script is):
`ftlab.train(*overrides)` runs one job as the command does and returns its results.json;
`ftlab.load(run_dir)` predicts the run's own test texts with the probabilities its predictions file
holds; a mistake raises `ftlab.UserError` naming the fix, before any folder is made."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from support.cli import REPO, TINY

SCRIPT = textwrap.dedent("""
    import json, sys
    import ftlab
    light = not any(m in sys.modules for m in ("torch", "transformers", "lightning", "hydra"))
    run_dir, refused_dir, overrides = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    results = ftlab.train(*overrides, f"hydra.run.dir={run_dir}")
    classifier = ftlab.load(results["run_dir"], threads=1)
    rows = [json.loads(line) for line in open(f"{run_dir}/predictions/test.jsonl")]
    predicted = classifier.predict([r["text"] for r in rows])
    one = classifier.predict(rows[0]["text"])
    errors = {}
    for name, bad in {"bad value": ["peft=lora", "peft.r=0"], "sweep": ["seed=1,2"],
                      "search preset": ["hparams_search=lr"], "a flag": ["-m", "seed=1"]}.items():
        try:
            ftlab.train(*bad, f"hydra.run.dir={refused_dir}/{name.replace(' ', '_')}")
        except ftlab.UserError as err:
            errors[name] = str(err)
    print(json.dumps({"light": light, "results": results, "labels": classifier.labels, "rows": rows,
                      "predicted": predicted, "one": one, "errors": errors}))
""")


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    overrides = [*TINY, "dataset=acl_sup", "peft=lora", "save.export=true", "logger=none"]
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(root / "run"), str(root / "refused"), json.dumps(overrides)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "root": root}


def test_import_is_light(ran):
    assert ran["light"]  # `import ftlab` pulls neither torch nor Hydra: they come with train / load


def test_train_runs_one_job_as_the_command_does(ran):
    run_dir = ran["root"] / "run"
    on_disk = json.loads((run_dir / "results.json").read_text())
    assert ran["results"] == on_disk and on_disk["status"] == "completed" and on_disk["run_dir"] == str(run_dir)
    assert on_disk["choices"]["peft"] == "lora" and on_disk["config"]["peft"]["r"] == 8
    assert "peft=lora" in on_disk["overrides"]
    for made in (".hydra/config.yaml", ".hydra/overrides.yaml", "ftlab.log", "model/adapter_config.json"):
        assert (run_dir / made).is_file(), made


def test_load_predicts_what_the_run_predicted(ran):
    rows, predicted = ran["rows"], ran["predicted"]
    assert ran["labels"] == ran["results"]["task"]["label_names"]
    assert [p["text"] for p in predicted] == [r["text"] for r in rows]
    assert [p["label_id"] for p in predicted] == [r["pred"] for r in rows]
    for p, r in zip(predicted, rows):
        assert [p["probs"][n] for n in ran["labels"]] == pytest.approx(r["probs"], abs=1e-5)
    assert ran["one"] == predicted[:1]  # one text, or a list


@pytest.mark.parametrize("name, says", [
    ("bad value", "peft.r=0 must be a positive integer"),
    ("sweep", "a comma makes it a sweep"),
    ("search preset", "ftlab.train runs one job; hparams_search=lr is a sweep"),
    ("a flag", "ftlab.train takes overrides only, not -m")])
def test_a_mistake_raises_before_any_folder(ran, name, says):
    message = ran["errors"][name]
    assert says in message and "\n  fix: " in message, message
    assert not (ran["root"] / "refused").exists()
