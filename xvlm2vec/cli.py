"""The ``xvlm2vec`` console script: one verb per job, each implemented in its own module.

A verb's module defines ``add_arguments(parser)`` and ``run(args) -> int``; it is imported only
when that verb runs, so ``xvlm2vec --help`` stays fast. ``train`` is TRL-parsed (the same parser as
``train.py``): its arguments go to :func:`xvlm2vec.training.script.run` untouched.

Error policy: a user error (a bad argument value, a missing path, an unknown task or language, an
empty selection, a model that would run untrusted code) is one line ``error: ...`` naming the
argument on stderr and exit status 2; verbs raise ``xvlm2vec_common.cli_errors.UsageError`` (an
``argparse.ArgumentTypeError``). A file-system error from the user's environment (disk full, read-only,
no permission) is one line and status 2 too. Any other exception is a crash: traceback, status 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from xvlm2vec import __version__
from xvlm2vec.progress import configure_progress
from xvlm2vec_common.cli_errors import OneLineErrorParser, report_usage_errors

PASSTHROUGH = {"train"}  # verbs whose module parses its own arguments: run(argv)

VERBS: dict[str, tuple[str, str]] = {
    "train": (
        "xvlm2vec.training.script",
        "distil a multilingual student from a recipe (= accelerate launch train.py)",
    ),
    "tiny-model": ("xvlm2vec.testing.tiny_model", "build a tiny random model folder (tests, demo)"),
    "fixtures": ("xvlm2vec.testing.fixtures", "write small data sets in the released formats"),
    "build": ("dataset_builders.build", "build MMMEB or the parallel corpus as a Hub-layout dataset folder"),
    "translate": ("dataset_builders.translate", "translate MMEB-train rows with a seq2seq or chat model"),
    "instructions": (
        "xvlm2vec.instructions",
        "translate the instruction table into new languages; apply it to a model",
    ),
    "eval": ("xvlm2vec.integrations.eval_verb", "evaluate embedding models on MMMEB"),
    "convert": ("xvlm2vec.convert", "convert an original Phi-3.5-V / VLM2Vec checkpoint"),
    "export": ("xvlm2vec.export", "export a model folder for vLLM (native layout) or sentence-transformers"),
    "publish": ("hub_cards.publish", "publish a model, dataset or metric folder to the Hub"),
    "demo": ("xvlm2vec.demo", "run the whole pipeline end to end on a synthetic world"),
}


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """Return the top-level parser; only ``verb``'s module is imported to fill its arguments."""
    parser = OneLineErrorParser(prog="xvlm2vec", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--progress",
        action="store_true",
        help="show progress bars even when stderr is not a terminal (default: bars on a terminal only)",
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name, (module, help_text) in VERBS.items():
        verb_parser = sub.add_parser(name, help=help_text, description=help_text, add_help=name not in PASSTHROUGH)
        if name == verb and name not in PASSTHROUGH:
            importlib.import_module(module).add_arguments(verb_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen verb, returning its exit code (2 for a user error found by the verb)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(verb if verb in VERBS else None)
    if verb in PASSTHROUGH:
        position = argv.index(verb)
        args = parser.parse_args(argv[: position + 1])  # the global options (--version, --progress) only
        configure_progress(args.progress)
        return report_usage_errors(importlib.import_module(VERBS[verb][0]).run, argv[position + 1 :])
    args = parser.parse_args(argv)  # --help and parse errors exit here (status 0 / 2)
    configure_progress(args.progress)
    module = importlib.import_module(VERBS[args.verb][0])
    return report_usage_errors(module.run, args)


if __name__ == "__main__":
    sys.exit(main())
