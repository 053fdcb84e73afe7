"""`ftlab estimate`: the training-memory estimate of a configured run, or of a model by size.

    ftlab estimate [--json] [--batch-size B] [--max-length L] [hydra overrides ...]
    ftlab estimate --params 3e9 [--adapter-fraction 0.05] [--precision P] [--optimizer adamw|sgd] [--json]

The first composes the same config a run would, builds the tokenizer and the model on the meta
device (no weights read, no data loaded, nothing trained), injects the peft method and estimates
for cfg.data.batch_size x cfg.data.max_length. The second is study 000's back-of-the-envelope.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

from ftlab.errors import UserError
from ftlab.memory.formulas import GiB, format_table, params_only

USAGE = ("ftlab estimate [--json] [--batch-size B] [--max-length L] [overrides ...]\n"
         "       ftlab estimate --params N [--adapter-fraction F] [--precision P] [--optimizer adamw|sgd] [--json]")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # short, exit 1, like every other user mistake
        raise UserError(f"ftlab estimate: {message}", f"usage: {USAGE}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ftlab estimate", usage=USAGE, description=__doc__.split("\n\n")[0])
    p.add_argument("overrides", nargs="*", help="Hydra overrides, as for a run (model=..., peft=..., ...)")
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")
    p.add_argument("--batch-size", type=int, help="default: cfg.data.batch_size")
    p.add_argument("--max-length", type=int, help="default: cfg.data.max_length")
    p.add_argument("--params", type=float, help="estimate a model by its parameter count only, e.g. 3e9")
    p.add_argument("--adapter-fraction", type=float, help="with --params: adapter size / model size (default 0.05)")
    p.add_argument("--precision", help="with --params: 32-true (default), bf16-mixed, 16-true, ...")
    p.add_argument("--optimizer", choices=("adamw", "adam", "sgd"), help="with --params (default adamw)")
    return p


def build_for_estimate(cfg):
    """Tokenizer, then model on the meta device (weights not read), then the peft injection."""
    import torch

    from ftlab.config import build

    task = build(cfg, "dataset").task()
    backbone = build(cfg, "model")
    injector = build(cfg, "peft")
    built = backbone.build_on_meta(task, backbone.load_tokenizer())
    with torch.device("meta"):  # the method's own parameters too
        model = injector.inject(built.model, built.new_parameters)
    return model, injector


def compose(overrides: list[str]):
    """The config a run with these overrides would get, checked as a run's is, and its choices."""
    from hydra.core.hydra_config import HydraConfig

    from ftlab.config import checked
    from ftlab.config import compose as compose_run

    cfg = compose_run(overrides)
    choices = {k: v for k, v in HydraConfig.get().runtime.choices.items() if not k.startswith("hydra")}
    return checked(cfg, choices), choices


def _config_estimate(args) -> dict:
    from ftlab.memory.measure import estimate_for_config

    cfg, choices = compose(args.overrides)
    model, injector = build_for_estimate(cfg)
    est = estimate_for_config(cfg, model, injector, batch_size=args.batch_size, max_length=args.max_length)
    return {"model": choices.get("model"), "peft": choices.get("peft"), "dataset": choices.get("dataset"), **est}


def _print_config(est: dict) -> None:
    p, dims = est["params"], est["dims"]
    print(f"memory estimate: model={est['model']} peft={est['peft']} ({est['dataset']}), {est['precision']}, {est['optimizer']}, "
          f"batch {est['batch_size']} x length {est['max_length']}, on {est['device']}, "
          f"attention {est['attention']}")
    print(f"params: {p['trainable']:,} trainable / {p['total']:,} total; layers {dims['layers']}, hidden {dims['hidden']}, "
          f"heads {dims['heads']}, ffn {dims['ffn']}; {dims['layers_in_backward']} layer(s) in the backward")
    print(format_table(est["bytes"], est["total_bytes"]))
    print(f"(study 001's full fine-tuning activations d(34blh + 9bal^2 + 8blh'), fp32 on a GPU: "
          f"{est['study_formula_activations'] / GiB:.3f} GiB)")
    for note in est["notes"]:
        print(f"note: {note}")
    print("GiB = 2^30 bytes (the studies' 'GB'); what is approximated: ftlab/memory/estimate.py")


def _print_params(est: dict) -> None:
    methods = est["methods"]
    head = f"{'component':<20}" + "".join(f"{m + ' (GiB)':>18}" for m in methods)
    print(f"memory estimate by size: {est['params']:.4g} params, {est['precision']}, {est['optimizer']}"
          + (f", adapters {est['adapter_fraction']:g} of the model" if est["adapter_fraction"] else "")
          + "; weights, gradients and optimizer states only (no activations)")
    print(head)
    for part in next(iter(methods.values()))["bytes"]:
        print(f"{part:<20}" + "".join(f"{m['bytes'][part] / GiB:>18.3f}" for m in methods.values()))
    print(f"{'total':<20}" + "".join(f"{m['total_bytes'] / GiB:>18.3f}" for m in methods.values()))
    if "saved_bytes" in est:
        print(f"saved by adapters: {est['saved_bytes'] / GiB:.3f} GiB (GiB = 2^30 bytes, the studies' 'GB')")


def estimate_main(argv: list[str]) -> int:
    """Entry point of `ftlab estimate ...`; returns the exit code."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    try:
        args = _parser().parse_args(argv)
        if args.params is not None:
            if args.overrides or args.batch_size or args.max_length:
                raise UserError("--params estimates by size alone: it takes no overrides, --batch-size or --max-length",
                                "drop them, or drop --params to estimate a configured model")
            fraction = 0.05 if args.adapter_fraction is None else args.adapter_fraction
            est = params_only(args.params, fraction, precision=args.precision or "32-true", optimizer=args.optimizer or "adamw")
            if args.json:
                print(json.dumps(est, indent=2))
            else:
                _print_params(est)
            return 0
        for flag, value, fix in (("--adapter-fraction", args.adapter_fraction, "add --params N"),
                                 ("--precision", args.precision, "override trainer.precision=... instead"),
                                 ("--optimizer", args.optimizer, "override optimizer=sgd (or adamw) instead")):
            if value is not None:
                raise UserError(f"{flag} only goes with --params", fix)
        import transformers

        transformers.utils.logging.set_verbosity_error()
        est = _config_estimate(args)
        if args.json:
            print(json.dumps(est, indent=2))
        else:
            _print_config(est)
        return 0
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
