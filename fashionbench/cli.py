"""The ``fashionbench`` command.

    fashionbench fit|validate|test|predict --config X.yaml [...]   LightningCLI (runner.py)
    fashionbench score FILE.npz [--k K ...] [--threshold T] [--empty-class exclude|zero]
    fashionbench data summary DATASET --root DIR [--split S] [--year Y] [--task T]
    fashionbench synth DATASET --out DIR [--images N] [--seed S] [--year Y]
    fashionbench leaderboard [--runs DIR] [--out DIR]
    fashionbench table PAPER [--target T]
    fashionbench reproduce PAPER [PAPER ...]|all [--target table1] [--root DATASET=DIR ...] [--seeds S ...]
    fashionbench download imaterialist|nus-wide|open-images --root DIR --split S [--workers N] [--timeout S] [--retries N]
    fashionbench compare [--source auto|wandb|records] [--filter KEY=VALUE ...] [--metric M]   runs side by side
    fashionbench report [--runs DIR] [--out results]   figures and results/index.html

Bad input (``InputError``) prints one line on stderr and exits 2, never a traceback.
Heavy imports happen inside each command, so ``score`` and ``data`` start fast.
"""
from __future__ import annotations

import argparse
import json
import sys

from fashionbench.errors import InputError

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")


def _cmd_score(args: argparse.Namespace) -> None:
    from fashionbench.scoring import score_file

    result = score_file(args.file, ks=tuple(args.k or (3,)), threshold=args.threshold, empty_class=args.empty_class)
    print(json.dumps(result))


def _cmd_data_summary(args: argparse.Namespace) -> None:
    from datamodules.summary import summarize

    print(json.dumps(summarize(args.dataset, args.root, split=args.split, year=args.year, task=args.task)))


def _cmd_synth(args: argparse.Namespace) -> None:
    from datamodules.synth import write_synthetic

    kwargs = {} if args.images is None else {"images": args.images}
    if args.year is not None:
        kwargs["year"] = args.year
    out = write_synthetic(args.dataset, args.out, seed=args.seed, **kwargs)
    print(f"fashionbench: wrote synthetic {args.dataset} to {out}")


def _cmd_leaderboard(args: argparse.Namespace) -> None:
    from fashionbench.leaderboard import write_leaderboard

    for path in write_leaderboard(args.runs, args.out):
        print(f"fashionbench: wrote {path}")


def _cmd_table(args: argparse.Namespace) -> None:
    from fashionbench.tables import render_target

    print(f"fashionbench: wrote {render_target(args.paper, args.target, runs_dir=args.runs)}")


def _cmd_reproduce(args: argparse.Namespace) -> None:
    from fashionbench.reproduce import parse_roots, reproduce_papers

    reproduce_papers(args.paper, args.target, roots=parse_roots(args.root), seeds=args.seeds, runs_dir=args.runs)


def _cmd_compare(args: argparse.Namespace) -> None:
    from fashionbench.compare import write_compare

    table, csv_path, figure, origin = write_compare(args.source, args.runs, args.project, args.entity, args.filter,
                                                    args.metric, args.group_by, args.out)
    import pandas as pd

    with pd.option_context("display.max_rows", 200, "display.max_columns", 20, "display.width", 200):
        print(table.to_string(index=False) if not table.empty else "(no runs)")
    print(f"fashionbench compare: {len(table)} group(s) from {origin}; wrote {csv_path}" + (f" and {figure}" if figure else ""))


def _cmd_report(args: argparse.Namespace) -> None:
    from fashionbench.report import write_report

    report = write_report(args.runs, args.out, args.benchmarks, args.predictions)
    print(f"fashionbench: wrote {report.index} ({len(report.figures)} figure(s); "
          f"{len(report.runs_without_predictions)} run(s) without a predictions file have no PR curves)")
    for problem in report.failed:
        print(f"fashionbench report: not drawn: {problem}")


def _cmd_download(args: argparse.Namespace) -> None:
    from fashionbench.download import download

    summary = download(args.dataset, args.root, args.split, workers=args.workers, timeout=args.timeout,
                       retries=args.retries, backoff=args.backoff, retry_failed=args.retry_failed)
    print(summary.line())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fashionbench",
        description="Multi-label image classification benchmark suite. Training: "
        "fashionbench fit|validate|test|predict --config CONFIG.yaml (LightningCLI; add --help).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("score", help="score a predictions .npz by specs/metrics.md (JSON on stdout)")
    p.add_argument("file")
    p.add_argument("--k", type=int, nargs="+", action="extend", metavar="K",
                   help="K of the top-K metrics: --k 3 5 or --k 3 --k 5 (default 3)")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--empty-class", choices=("exclude", "zero"), default="exclude")
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser("data", help="dataset tools")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    s = data_sub.add_parser("summary", help="label counts of a dataset split, read from its annotations (JSON)")
    s.add_argument("dataset")
    s.add_argument("--root", required=True)
    s.add_argument("--split")
    s.add_argument("--year", type=int)
    s.add_argument("--task")
    s.set_defaults(func=_cmd_data_summary)

    p = sub.add_parser("synth", help="write a small synthetic dataset in the real on-disk format")
    p.add_argument("dataset")
    p.add_argument("--out", required=True)
    p.add_argument("--images", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--year", type=int, help="the dataset's year/edition (VOC 2007|2012, COCO 2014|2017)")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("leaderboard", help="results/leaderboard.{csv,md} from the run records")
    p.add_argument("--runs", default="results/runs")
    p.add_argument("--out", default="results")
    p.set_defaults(func=_cmd_leaderboard)

    p = sub.add_parser("table", help="render a paper's table from benchmarks/<paper>/paper.yaml and the run records")
    p.add_argument("paper")
    p.add_argument("--target", default="table1")
    p.add_argument("--runs", default="results/runs")
    p.set_defaults(func=_cmd_table)

    p = sub.add_parser("reproduce", help="run papers' table configs (synthetic smoke data without --root), then render them")
    p.add_argument("paper", nargs="+", help="paper name(s) under benchmarks/, or 'all'")
    p.add_argument("--target", default="table1")
    p.add_argument("--root", action="append", default=[], metavar="DATASET=DIR", help="data root per dataset, e.g. voc=/data/voc")
    p.add_argument("--seeds", type=int, nargs="+")
    p.add_argument("--runs", default="results/runs")
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser("compare", help="runs side by side (W&B when online, else the run records): a table and a figure")
    p.add_argument("--source", choices=("auto", "wandb", "records"), default="auto")
    p.add_argument("--runs", default="results/runs")
    p.add_argument("--project", default="fashionbench")
    p.add_argument("--entity")
    p.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE", help="e.g. paper=cmsg, data_source=real")
    p.add_argument("--metric", help="default: each run's headline (mAP, top1)")
    p.add_argument("--group-by", nargs="+", metavar="FIELD", help="default: model dataset task data_source config_sha")
    p.add_argument("--out", default="results", help="writes OUT/compare.csv and OUT/figures/compare.png")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("report", help="the figures (results/figures/) and the HTML front page (results/index.html)")
    p.add_argument("--runs", default="results/runs")
    p.add_argument("--out", default="results")
    p.add_argument("--benchmarks", default="benchmarks")
    p.add_argument("--predictions", help="default: OUT/predictions")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("download", help="fetch the images of imaterialist, nus-wide or open-images (resumable)")
    p.add_argument("dataset", help="imaterialist, nus-wide or open-images")
    p.add_argument("--root", required=True)
    p.add_argument("--split", required=True, help="the list's split (nus-wide: all, train or test)")
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to connect and to wait for the next bytes")
    p.add_argument("--retries", type=int, default=3, help="retries of 5xx/429, drops, resets and timeouts")
    p.add_argument("--backoff", type=float, default=0.5, help="back-off factor in seconds (doubles per retry)")
    p.add_argument("--retry-failed", action="store_true", help="try again the items an earlier run listed as failed")
    p.set_defaults(func=_cmd_download)
    return parser


def _one_line(err: Exception) -> str:
    """The user-facing line of an InputError, also when a DataLoader worker re-raised it
    with the worker's traceback folded into the message."""
    text = str(err).strip()
    if "Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = last.split("InputError: ", 1)[-1]
    return text


def _input_error_in_chain(err: BaseException) -> InputError | None:
    """The InputError behind ``err`` when a library (jsonargparse building a class,
    Lightning running a hook) wrapped it in an exception of its own."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, InputError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in LIGHTNING_SUBCOMMANDS:
            from fashionbench.runner import run_cli

            run_cli(None if argv == sys.argv[1:] else argv)  # None: LightningCLI reads sys.argv
            return 0
        args = build_parser().parse_args(argv)
        args.func(args)
        return 0
    except InputError as err:
        print(_one_line(err), file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("fashionbench: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - only to unwrap a user-facing InputError
        cause = _input_error_in_chain(err)
        if cause is None:
            raise
        print(_one_line(cause), file=sys.stderr)
        return cause.exit_code


if __name__ == "__main__":
    sys.exit(main())
