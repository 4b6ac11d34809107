"""``xvlm2vec eval``: score embedding models on MMMEB (one or more ``--model``, one ``--data``).

Run with several processes through accelerate, e.g.
``accelerate launch --num_processes 2 -m xvlm2vec eval --model DIR --data DIR --output-dir DIR``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from modeling_xvlm2vec.instructions import STYLES, TIES
from xvlm2vec_common.cli_arguments import distinct, language_file, local_or_hub, non_negative_int, positive_int
from xvlm2vec_common.cli_errors import UsageError
from xvlm2vec_common.model_folder import TRUST_HINT
from xvlm2vec_common.row_checks import split_name
from xvlm2vec_common.safe_outputs import check_output_dir, check_writable

ENGINES = ("default", "vllm")


def json_object(value: str) -> dict:
    """A JSON object given on the command line."""
    try:
        parsed = json.loads(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return parsed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``xvlm2vec eval``."""
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="DIR_OR_REPO",
        help="model to score (repeat for several: teacher then student). An XVLM2Vec folder/repo, a CLIP / "
        "SigLIP / SigLIP2 one, a sentence-transformers one, or TEXT+IMAGE for two sentence-transformers encoders",
    )
    parser.add_argument("--data", required=True, metavar="DIR_OR_REPO", help="MMMEB dataset folder or Hub repo")
    parser.add_argument(
        "--output-dir", required=True, type=Path, help="where results.json, results.md, results.png go"
    )
    parser.add_argument(
        "--tasks",
        nargs="+",
        default=[],
        metavar="TASK",
        help="tasks (i2t t2i c vg vqa) or configs (xtd_i2t); default all",
    )
    parser.add_argument(
        "--languages",
        nargs="+",
        default=[],
        metavar="LANG",
        help="language splits (any codes the data holds, e.g. en it pt); default all",
    )
    parser.add_argument(
        "--styles",
        nargs="+",
        default=list(STYLES),
        choices=STYLES,
        help="formatting styles, each scored on its own (default all three); baselines run without styles",
    )
    parser.add_argument("--batch-size", type=positive_int, default=16, help="rows per embedding batch (default 16)")
    parser.add_argument(
        "--num-workers",
        type=non_negative_int,
        default=0,
        help="threads that decode images and run the processor for the next batches while the model embeds "
        "(default 0: one after the other); scores do not depend on it",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="default",
        help="what embeds an xVLM2Vec model: default (the model's encode, in this process) or vllm (exported once "
        "and embedded by vLLM's offline engine, one per visible GPU, from the vLLM environment; same prompts, cache "
        "keyed by engine). Run it in one process (not under accelerate launch)",
    )
    parser.add_argument(
        "--vllm-engine-args",
        type=json_object,
        default={},
        metavar="JSON",
        help="with --engine vllm: extra vLLM LLM() keyword arguments, e.g. '{\"max_model_len\": 4096}'",
    )
    parser.add_argument(
        "--vllm-exports",
        type=Path,
        default=None,
        metavar="DIR",
        help="with --engine vllm: where exports are kept, one per model fingerprint "
        "(default $XDG_CACHE_HOME/xvlm2vec/vllm-exports)",
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="candidate-embedding cache (default OUTPUT_DIR/embedding_cache)"
    )
    parser.add_argument("--no-cache", action="store_true", help="keep candidate embeddings in memory only")
    parser.add_argument(
        "--max-queries", type=positive_int, default=None, help="score only the first N queries of each split"
    )
    parser.add_argument(
        "--ties",
        choices=TIES,
        default="pessimistic",
        help="tie rule: pessimistic (default; a candidate tied with the positive ranks above it, as trec_eval) or "
        "optimistic (the tied positive wins, as in the released GPU runs)",
    )
    parser.add_argument(
        "--save-prompts",
        action="store_true",
        help="also write OUTPUT_DIR/prompts.jsonl: every embedded query and candidate prompt with its config, "
        "language, style, side, row id and image",
    )
    parser.add_argument(
        "--languages-file",
        type=language_file,
        default=None,
        help="language file: its instructions are added to each instruction model's table (a language the model's "
        "config lacks) and its baseline_class_template serves the baselines",
    )
    parser.add_argument(
        "--metric",
        default=None,
        help="evaluate metric module path or Hub id (default: the shipped MMMEB metric, xvlm2vec.metric_path()); "
        "its Python code runs, so another module needs --trust-remote-code",
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow code that comes with a --model folder/repo (its auto_map) or a --metric module to run; "
        "only for code you have read or trust. xVLM2Vec folders never need it: the installed classes load them",
    )


def check_arguments(args: argparse.Namespace) -> list:
    """User errors found before any model loads: models (paths, types, trust), data, tasks, languages, metric,
    repeated tasks or languages, contradicting cache flags, a cache or output folder that cannot be written.

    Returns the checked model sources (``EmbedderSource``) in ``--model`` order.
    """
    from xvlm2vec.evaluation.pipeline import RESULTS_FILENAME
    from xvlm2vec.evaluation.registry import check_embedder_source
    from xvlm2vec.evaluation.runner import select_splits

    if args.metric is not None and not args.trust_remote_code:
        raise UsageError(
            f"--metric {args.metric}: a metric module is Python code that runs when it loads; {TRUST_HINT}"
        )
    distinct(args.tasks, "--tasks")
    distinct([split_name(lang) for lang in args.languages], "--languages")
    if args.no_cache and args.cache_dir is not None:
        raise UsageError("--no-cache and --cache-dir contradict each other: give one")
    cache_dir = cache_folder(args)
    if cache_dir is not None:
        check_writable(cache_dir, "--cache-dir")
    models = [part for spec in args.model for part in spec.split("+")]
    keep = _cache_entry(cache_dir, args.output_dir)
    check_output_dir(args.output_dir, RESULTS_FILENAME, keep=keep, inputs=[args.data, *models])
    sources = [check_embedder_source(spec, args.trust_remote_code) for spec in args.model]
    data = local_or_hub(args.data, "--data")
    try:
        select_splits(data, args.tasks, args.languages)
    except ConnectionError as error:
        raise UsageError(
            f"--data {args.data}: no such folder, and the Hub cannot be reached ({first_line(error)}; "
            "offline (HF_HUB_OFFLINE) or a typo?)"
        ) from None
    except FileNotFoundError as error:
        raise UsageError(
            f"--data {args.data}: not an MMMEB dataset folder or Hub repo ({first_line(error)})"
        ) from error
    except ValueError as error:  # unknown task or language, empty selection
        raise UsageError(first_line(error)) from error
    if args.engine == "vllm":
        from xvlm2vec.evaluation.embedders import XVLM2VecEmbedder

        for source in sources:
            if source.loader != XVLM2VecEmbedder.from_pretrained:
                raise UsageError(
                    f"--engine vllm: --model {source.spec} is not an xVLM2Vec model (only those run on vLLM)"
                )
    return sources


def add_languages(embedder, languages_file: Path) -> None:
    """Give ``embedder`` the languages of ``languages_file``: their instructions join its table, the file's
    registry serves the baselines' class templates."""
    from modeling_xvlm2vec.languages import load_languages, read_language_file, table_with_entries

    embedder.languages = load_languages(languages_file)
    if embedder.uses_instructions:
        embedder.instructions = table_with_entries(embedder.instructions, read_language_file(languages_file))


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message."""
    return (str(error).splitlines() or [type(error).__name__])[0]


def _cache_entry(cache_dir: Path | None, output_dir: Path) -> tuple[str, ...]:
    """The entry of ``output_dir`` holding the cache, which a rerun keeps (``*`` when the cache is the folder
    itself).
    """
    if cache_dir is None or not cache_dir.resolve().is_relative_to(output_dir.resolve()):
        return ()
    parts = cache_dir.resolve().relative_to(output_dir.resolve()).parts
    return (parts[0],) if parts else ("*",)


def cache_folder(args: argparse.Namespace) -> Path | None:
    """The candidate-embedding cache folder: ``--cache-dir``, else OUTPUT_DIR/embedding_cache; None with --no-cache."""
    from xvlm2vec.evaluation.pipeline import CACHE_DIRNAME

    return None if args.no_cache else (args.cache_dir or args.output_dir / CACHE_DIRNAME)


def run(args: argparse.Namespace, engine: Callable[[list, argparse.Namespace], list] | None = None) -> int:
    """Load the models and data, score them, write the outputs and print the table.

    ``engine`` turns the checked model sources into those of another engine (``--engine vllm``: the eval verb of
    :mod:`xvlm2vec.integrations.eval_verb`, a layer above); it raises ``UsageError`` for what it cannot run.
    """
    from xvlm2vec.evaluation.pipeline import evaluate_models
    from xvlm2vec.evaluation.runner import DEFAULT_METRIC, RunConfig, Runner
    from xvlm2vec_common.results_document import markdown_table

    sources = check_arguments(args)
    if engine is not None:
        sources = engine(sources, args)
    cache_dir = cache_folder(args)
    config = RunConfig(
        tasks=args.tasks,
        languages=args.languages,
        styles=args.styles,
        batch_size=args.batch_size,
        cache_dir=str(cache_dir) if cache_dir is not None else None,
        max_queries=args.max_queries,
        metric=args.metric or DEFAULT_METRIC,
        ties=args.ties,
        save_prompts=args.save_prompts,
        num_workers=args.num_workers,
    )
    runner = Runner(config)
    try:
        embedders = [source.load(device=runner.state.device) for source in sources]
    except ValueError as error:  # a folder vLLM cannot serve (its export refuses it)
        if args.engine != "vllm":
            raise
        raise UsageError(f"--engine vllm: {first_line(error)}") from error
    if args.languages_file is not None:
        for embedder in embedders:
            add_languages(embedder, args.languages_file)
    try:
        document = evaluate_models(
            embedders, args.data, args.output_dir, runner, keep=_cache_entry(cache_dir, args.output_dir)
        )
    finally:
        for embedder in embedders:
            embedder.close()
    if runner.state.is_main_process:
        print(markdown_table(document))
        extra = ", prompts.jsonl" if args.save_prompts else ""
        print(f"wrote {args.output_dir / 'results.json'}, results.md, results.png{extra}")
    return 0
