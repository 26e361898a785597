"""``ensprune run SPEC.toml``: the whole flow, resumable."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ensprune.cli._checks import int_at_least


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a study spec end to end (train pool, search, select, report)",
        description="Run a study spec end to end. Re-running the same spec resumes it.",
    )
    parser.add_argument("spec", type=Path, help="study spec (TOML), e.g. studies/quickstart.toml")
    parser.add_argument("--run-dir", type=Path, help="results directory (default: runs/<name>)")
    parser.add_argument(
        "--storage", help="Optuna storage URL (default: SQLite file in the run dir)"
    )
    parser.add_argument(
        "--data-dir", type=Path, help="dataset directory (default: $ENSPRUNE_DATA_DIR or ./data)"
    )
    parser.add_argument(
        "--no-download", action="store_true", help="fail instead of downloading missing data files"
    )
    parser.add_argument(
        "--workers",
        type=int_at_least(1),
        help="parallel worker processes: pool members trained, member studies searched and "
        "predictions computed at once (default: spec's [study] workers)",
    )
    parser.add_argument(
        "--threads",
        type=int_at_least(0),
        default=1,
        help="torch CPU threads of this process and of each worker: pool training, search, "
        "predictions (default: 1; 0: torch's default, one per core). Small networks train "
        "fastest on one thread; more threads on a busy machine can be 10x slower",
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="dask scheduler (e.g. tcp://HOST:8786) whose workers run the member studies "
        "(default: spec's [study] scheduler; needs pip install 'ensprune[dask]')",
    )
    parser.add_argument(
        "--join",
        action="store_true",
        help="add this process as one more worker to the run another `ensprune run` leads on "
        "the same --run-dir and --storage (PostgreSQL or a .log journal file), then exit",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bars or per-trial lines (stderr)"
    )
    parser.add_argument("--json", action="store_true", help="print the final summary as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ensprune.cli._logging import configure_logging
    from ensprune.errors import SpecError
    from ensprune.study.pipeline import run_study
    from ensprune.study.spec import StudySpec

    quiet = bool(args.quiet or args.json)
    configure_logging(verbose=not quiet)
    spec = StudySpec.from_toml(args.spec)  # every name and knob is checked here, before training
    _check_before_training(args, spec)
    try:
        text = args.spec.read_text(encoding="utf-8")
    except OSError as exc:  # pragma: no cover - from_toml read it a moment ago
        raise SpecError(f"cannot read {args.spec}: {exc}") from None
    if args.join:
        from ensprune.study.join import join_run

        run_dir = join_run(
            spec,
            run_dir=args.run_dir,
            storage=args.storage,
            data_dir=args.data_dir,
            download=not args.no_download,
            progress=not quiet,
            workers=args.workers,
            threads=args.threads or None,
        )
        print(f"joined {run_dir}: its member studies have their trials")
        return 0
    result = run_study(
        spec,
        spec_text=text,
        spec_file=args.spec,
        run_dir=args.run_dir,
        storage=args.storage,
        data_dir=args.data_dir,
        download=not args.no_download,
        progress=not quiet,
        workers=args.workers,
        scheduler=args.scheduler,
        threads=args.threads or None,
    )
    if args.json:
        print(json.dumps(result.summary, indent=2, default=str))
    else:
        print(result.summary_text)
    return 0


def _check_before_training(args: argparse.Namespace, spec: Any) -> None:
    """What the spec alone cannot tell: the run directory, storage, data directory and device."""
    from ensprune.cli._checks import input_dir, output_dir
    from ensprune.study.build import check_device, check_storage_url

    # the pool trains in this process; a spec may name cuda for another machine, not for this one
    check_device(spec.device, f"{args.spec}: [study] device")
    if args.run_dir is not None:
        output_dir(args.run_dir, "--run-dir")
    elif spec.run_dir is not None:
        output_dir(spec.run_dir, f"{args.spec}: [study] run_dir")
    else:  # the default, runs/<name>
        output_dir(Path("runs") / spec.name, "the run directory")
    if args.storage is not None:
        check_storage_url(args.storage, "--storage")
    url = args.storage or spec.storage
    if url is not None and "://" in url and not url.startswith(("sqlite", "journal://")):
        from ensprune.storage import open_storage

        open_storage(url)  # a database server is reached now, not after the pool has trained
    if args.data_dir is not None:
        input_dir(args.data_dir, "--data-dir")
