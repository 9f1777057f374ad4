"""`microemo evaluate`: EMER Accuracy_s / Recall_s (and a judge-free score) for a predictions file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register", "run"]

EXIT_INCOMPLETE = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `evaluate` sub-command."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score predictions with EMER's Accuracy_s / Recall_s (LLM judge or saved groupings) and judge-free scores",
        description=(
            "Score open-vocabulary emotion predictions against EMER references. Predictions are label lists "
            "(CSV name,openset) or free-form explanations (CSV name,english; labels are extracted by the judge). "
            "Prints a table shaped like the paper's Table 1 and writes a JSON report for auditing. Without "
            "--judge-model or --groupings it gives the judge-free scores only (Accuracy_s / Recall_s need a judge)."
        ),
    )
    parser.add_argument("--predictions", type=Path, required=True, help="predictions file (.csv, .jsonl, .json)")
    parser.add_argument("--references", type=Path, required=True, help="references file, e.g. CSV name,openset")
    parser.add_argument("--output", type=Path, default=None,
                        help="JSON report path (default: <predictions>.emer-report.json beside the predictions)")
    parser.add_argument("--model-name", default=None, help="row name in the table (default: predictions file stem)")
    parser.add_argument("--prediction-field", default=None,
                        help="prediction column (default: openset/labels, else english/description/...)")
    parser.add_argument("--reference-field", default=None, help="reference column (default: openset)")

    judge = parser.add_argument_group("judge (an OpenAI-compatible endpoint: OpenAI, vLLM, Ollama, llama.cpp)")
    judge.add_argument("--judge-model", default=None, help="judge model name; without it, saved groupings (--groupings) give "
                       "Accuracy_s / Recall_s, and with none only the judge-free scores are given")
    judge.add_argument("--judge-base-url", default=None, help="endpoint, e.g. http://localhost:8000/v1 (default: OpenAI)")
    judge.add_argument("--judge-api-key-env", default="OPENAI_API_KEY", help="environment variable holding the key (default: OPENAI_API_KEY)")
    judge.add_argument("--judge-concurrency", type=int, default=8, help="requests in flight at once (default: 8)")
    judge.add_argument("--judge-timeout", type=float, default=60.0,
                       help="seconds a request may take, to the last byte of the reply (default: 60); a judge that never answers "
                            "stops the run after about (--judge-timeout-retries + 1) x this")
    judge.add_argument("--judge-connect-timeout", type=float, default=10.0, help="seconds to open a connection (default: 10)")
    judge.add_argument("--judge-max-retries", type=int, default=5,
                       help="retries per request on 429, 5xx, timeouts, dropped connections and replies that are not "
                            "a chat completion (default: 5)")
    judge.add_argument("--judge-timeout-retries", type=int, default=1,
                       help="of those, at most this many after a timeout (default: 1)")
    judge.add_argument("--judge-cache", type=Path, default=None,
                       help="SQLite cache of judge replies (default: ~/.cache/microemo/judge-cache.sqlite)")
    judge.add_argument("--judge-prompts", type=Path, default=None, metavar="FILE",
                       help="JSON or YAML file with the judge's 'grouping' ({labels}) and 'extraction' ({description}) "
                            "templates (default: the built-in wording)")
    judge.add_argument("--no-judge-cache", action="store_true", help="send every prompt, cache nothing")

    saved = parser.add_argument_group("saved groupings and judge-free scores")
    saved.add_argument("--groupings", type=Path, default=None,
                       help="saved groupings: a folder of <name>.npy (MERTools openset-synonym) or a JSON report")
    saved.add_argument("--mer2024-label-parsing", action="store_true",
                       help="read list strings exactly as MERTools' MER2024 scorer (to recompute its published numbers)")
    saved.add_argument("--lexicon", type=Path, default=None,
                       help="emotion-wheel lexicon folder in MERTools' layout (wheel*.xlsx, synonym.xlsx, format.csv)")
    saved.add_argument("--matching", choices=("lemma", "exact"), default="lemma",
                       help="judge-free matching when no lexicon is given (default: lemma)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run one evaluation; 0 when every sample was scored, 3 when some failed, 1 on an error, 130 when
    interrupted.

    An error is one line on stderr that names the input and what was expected; with ``--debug``
    (the `microemo` command's switch) it is raised instead, with its traceback.
    """
    # Imported here so that building the `microemo` parser stays fast.
    import sqlite3

    from .judge import JudgeConfig, JudgeError
    from .runner import EvaluationRequest, format_table, run_evaluation

    try:
        judge = None
        if args.judge_model:
            judge = JudgeConfig(
                model=args.judge_model,
                base_url=args.judge_base_url,
                api_key_env=args.judge_api_key_env,
                concurrency=args.judge_concurrency,
                timeout=args.judge_timeout,
                connect_timeout=args.judge_connect_timeout,
                max_retries=args.judge_max_retries,
                timeout_retries=args.judge_timeout_retries,
                cache_path=args.judge_cache,
                use_cache=not args.no_judge_cache,
            )
        output = args.output or args.predictions.with_name(args.predictions.stem + ".emer-report.json")
        request = EvaluationRequest(
            predictions=args.predictions,
            references=args.references,
            judge=judge,
            groupings=args.groupings,
            judge_prompts=args.judge_prompts,
            lexicon=args.lexicon,
            matching=args.matching,
            label_parsing="mer2024" if args.mer2024_label_parsing else "lenient",
            prediction_field=args.prediction_field,
            reference_field=args.reference_field,
            model_name=args.model_name,
            output=output,
            progress=not args.no_progress,
        )
        report = run_evaluation(request)
    except (JudgeError, ValueError, OSError, sqlite3.Error) as error:
        if getattr(args, "debug", False):
            raise
        print(f"microemo evaluate: error: {_one_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if getattr(args, "debug", False):
            raise
        print("microemo evaluate: interrupted; no report written. Judge replies received so far are in the "
              "cache: run the same command again to resume.", file=sys.stderr)
        return 130
    print(format_table(report))
    print(f"report: {output}")
    return 0 if report["scores"]["complete"] else EXIT_INCOMPLETE


def _one_line(error: BaseException) -> str:
    """The error's message on one line (a server's error text may hold newlines)."""
    return " ".join(str(error).split()) or type(error).__name__
