"""``ensprune prune``: train one model, prune it, and compare dense vs pruned on test data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ensprune.cli._checks import finite_float, int_at_least, seed
from ensprune.errors import SpecError


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "prune",
        help="train, prune and measure one model (dense vs pruned)",
        description="Train one model, prune it with one method, fine-tune with masks enforced, and "
        "report test accuracy, non-zero prunable weights, MACs and CPU latency (batch 256) "
        "of the dense and the pruned network.",
    )
    parser.add_argument(
        "--dataset", default="digits", help="dataset name, any case (default: digits)"
    )
    parser.add_argument(
        "--model",
        default="lenet300",
        help="zoo model, any case (ensprune list models), or your factory as 'pkg.module:function' "
        "(default: lenet300)",
    )
    parser.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the model or factory, e.g. --model-arg width=8 (repeatable; JSON values)",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="trained dense weights to prune (a torch.save-d state_dict or an ensprune "
        "checkpoint; loaded with weights_only=True) instead of training the model here",
    )
    parser.add_argument(
        "--method", default="magnitude", help="pruning method, any case (default: magnitude)"
    )
    parser.add_argument(
        "--sparsity", type=finite_float, default=0.9, help="share of weights to remove, in [0, 1)"
    )
    parser.add_argument(
        "--epochs",
        type=int_at_least(0),
        default=40,
        help="max dense training epochs (early stopping)",
    )
    parser.add_argument(
        "--finetune-epochs",
        type=int_at_least(0),
        default=None,
        help="fine-tuning epochs (default: half of --epochs; all of them for methods that reset "
        "and retrain, such as dropnet)",
    )
    parser.add_argument("--lr", type=finite_float, default=1e-3, help="learning rate")
    parser.add_argument(
        "--dense-anneal",
        type=float,
        default=None,
        metavar="FACTOR",
        help="after early stopping, train the dense network on at lr x FACTOR, within the same "
        "--epochs (the benchmarks' recipe: 0.1; default: one stage)",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="train the dense network even if one of the same recipe is cached, and do not "
        "cache it ($ENSPRUNE_CACHE_DIR/dense, else ~/.cache/ensprune/dense)",
    )
    parser.add_argument(
        "--optimizer",
        default="adam",
        help="dense training optimiser, any case (default: adam; see `ensprune list optimizers`)",
    )
    parser.add_argument("--batch-size", type=int_at_least(1), default=64, help="mini-batch size")
    parser.add_argument(
        "--seed", type=seed, default=0, help="seed of splits, init, training and pruning"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a method knob, e.g. --param scope=layer (repeatable; values parsed as JSON when possible)",
    )
    parser.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="PATTERN",
        help="prune only layers whose module or weight name matches, e.g. 'layer3.*' "
        "(fnmatch-style, case-sensitive; repeatable; default: every Linear/Conv layer)",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help="never prune layers whose name matches, e.g. 'conv1' or '*.shortcut.*' (repeatable)",
    )
    parser.add_argument(
        "--max-train", type=int_at_least(1), default=None, help="subsample the training split"
    )
    parser.add_argument(
        "--data-dir", type=Path, help="dataset directory (default: $ENSPRUNE_DATA_DIR or ./data)"
    )
    parser.add_argument(
        "--no-download", action="store_true", help="fail instead of downloading missing data files"
    )
    parser.add_argument(
        "--augment",
        default=None,
        help="augment training images (shift, affine, flip_shift; see ensprune list augmentations)",
    )
    parser.add_argument(
        "--lr-schedule",
        default="constant",
        help="fine-tuning lr: constant or cosine (pair cosine with --param schedule=gradual)",
    )
    parser.add_argument(
        "--clean-epochs",
        type=int,  # range checked by the training config, before any data is loaded
        default=0,
        help="the last N fine-tuning epochs skip --augment (very sparse networks underfit it)",
    )
    parser.add_argument(
        "--distill",
        type=finite_float,
        default=0.0,
        help="fine-tuning distils from the dense network with this weight α in [0, 1] (T = 4)",
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads for training and timing (default: 1; 0: torch's default, one per "
        "core). Small networks train fastest on one thread; more threads on a busy machine can "
        "be 10x slower",
    )
    parser.add_argument("--save", type=Path, help="write the pruned checkpoint here")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=check_then_run)


def parse_params(pairs: list[str], flag: str = "--param") -> dict[str, Any]:
    """``["scope=layer", "rounds=3"]`` -> ``{"scope": "layer", "rounds": 3}``."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SpecError(f"{flag} expects KEY=VALUE; got {pair!r}")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


def check_then_run(args: argparse.Namespace) -> int:
    """Refuse what the library would only find after training, then :func:`run`."""
    from ensprune.cli._checks import input_dir, output_file
    from ensprune.pruning import METHODS
    from ensprune.study.build import check_device, check_knob_types

    check_device(args.device, "--device")
    params = parse_params(args.param)
    method = METHODS.canonical(args.method)
    METHODS.check_knobs(method, params, "--param")
    check_knob_types(METHODS.get(method), params, f"--param of pruning method {method!r}")
    if args.save is not None:
        output_file(args.save, "--save")
    if args.data_dir is not None:
        input_dir(args.data_dir, "--data-dir")
    return run(args)


def run(args: argparse.Namespace) -> int:
    import torch

    if args.threads < 0:
        raise SpecError(f"--threads must be >= 0 (0: one per core); got {args.threads}")
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        result = _prune(args)
    finally:
        torch.set_num_threads(threads)  # a caller of main() (e.g. a test) keeps its setting
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    dense, pruned = result["dense"], result["pruned"]
    print(
        f"{result['model']} on {result['dataset']}, {pruned['method']} at target sparsity "
        f"{args.sparsity}:"
    )
    print(f"{'':8}{'accuracy':>10}{'params':>12}{'MACs':>12}{'latency_ms':>12}")
    for label, row in (("dense", dense), ("pruned", pruned)):
        print(
            f"{label:8}{row['accuracy']:>10.4f}{row['params']:>12,}{row['macs']:>12,}"
            f"{row['latency_ms']:>12.3f}"
        )
    print(f"sparsity {pruned['sparsity']:.4f} (share of prunable weights removed)")
    dense_recipe = result["recipe"]["dense"]
    if dense_recipe["source"] == "cache":
        print(f"dense network from the cache: {dense_recipe['cache_file']} (--no-cache retrains)")
    if not pruned["target_is_exact"]:
        print(
            f"--sparsity {args.sparsity} was {args.method}'s target, not a promise: the above is learned"
        )
    if args.save:
        print(f"pruned checkpoint: {args.save}")
    return 0


def _prune(args: argparse.Namespace) -> dict[str, Any]:
    """The flags as :func:`~ensprune.study.single.prune_one`'s arguments."""
    from ensprune.study.single import prune_one

    return prune_one(
        dataset=args.dataset,
        model=args.model,
        method=args.method,
        sparsity=args.sparsity,
        epochs=args.epochs,
        finetune_epochs=args.finetune_epochs,
        augment=args.augment,
        lr_schedule=args.lr_schedule,
        clean_epochs=args.clean_epochs,
        distill=args.distill,
        lr=args.lr,
        batch_size=args.batch_size,
        seed=args.seed,
        params=parse_params(args.param),
        max_train=args.max_train,
        data_dir=args.data_dir,
        download=not args.no_download,
        device=args.device,
        optimizer=args.optimizer,
        save=args.save,
        progress=not (args.quiet or args.json),
        checkpoint=args.checkpoint,
        model_args=parse_params(args.model_arg, "--model-arg"),
        dense_anneal=args.dense_anneal,
        cache=not args.no_cache,
        include=args.include,
        exclude=args.exclude,
    )
