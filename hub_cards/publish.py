"""``xvlm2vec publish {model,dataset,metric} FOLDER --repo-id ID``: push a folder to the Hugging Face Hub.

The folder is first staged (only what the repository kind holds, card written, local paths taken
out; secrets and links leaving the folder refused) and checked: a folder that would not load once
published is refused with every reason listed. ``--dry-run`` writes the staged folder to
``--dry-run-dir`` and prints its files and sizes instead of uploading. Otherwise the staged folder
goes up with ``HfApi.create_repo`` (private unless ``--public``) and ``HfApi.upload_folder`` (models
and datasets to their repo types, metrics to a Space, where ``evaluate.load`` finds them).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import fields
from pathlib import Path

from huggingface_hub import CommitInfo, HfApi
from huggingface_hub.errors import HfHubHTTPError

from hub_cards.checks import CARD_NAME, PublishRefused
from hub_cards.staging import KINDS, REPO_TYPES, CardInputs, StagedFolder, check_arguments, stage
from xvlm2vec_common.cli_errors import UsageError, one_line
from xvlm2vec_common.safe_outputs import atomic_output_dir

DEFAULT_DRY_RUN_ROOT = Path("outputs") / "publish"


def upload(
    staged: StagedFolder,
    kind: str,
    repo_id: str,
    private: bool = True,
    revision: str | None = None,
    commit_message: str | None = None,
    api: HfApi | None = None,
) -> CommitInfo:
    """Create ``repo_id`` if needed (private unless ``private=False``; an existing repository keeps its
    visibility), and the ``revision`` branch, and upload the staged folder as one commit."""
    api = api or HfApi()
    repo_type = REPO_TYPES[kind]
    api.create_repo(
        repo_id,
        repo_type=repo_type,
        private=private,
        exist_ok=True,
        space_sdk="gradio" if repo_type == "space" else None,
    )
    if revision is not None:
        api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=staged.path,
        repo_type=repo_type,
        revision=revision,
        commit_message=commit_message or f"Upload {kind} with xvlm2vec publish",
    )


def dry_run_dir(args: argparse.Namespace) -> Path:
    """Where ``--dry-run`` writes: ``--dry-run-dir``, else ``outputs/publish/<namespace>/<name>``; must be empty.

    The default ends in the repository name, so a metric's dry run loads with ``evaluate.load(folder)``.
    """
    target = args.dry_run_dir or DEFAULT_DRY_RUN_ROOT / args.repo_id
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ValueError(f"--dry-run-dir {target}: exists and is not an empty folder (the dry run must be exact)")
    return target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``xvlm2vec publish``."""
    parser.add_argument("kind", choices=KINDS, help="what the folder holds (a metric goes to a Space)")
    parser.add_argument("folder", type=Path, help="saved model, built dataset, or metric module folder")
    parser.add_argument(
        "--repo-id", required=True, help="namespace/name on the Hub (a metric's name must match its module file)"
    )
    visibility = parser.add_mutually_exclusive_group()
    visibility.add_argument(
        "--private", dest="private", action="store_true", default=True, help="create the repository private (default)"
    )
    visibility.add_argument(
        "--public", dest="private", action="store_false", help="create the repository public (anyone can read it)"
    )
    parser.add_argument("--revision", default=None, help="branch to commit to (created if missing); default: main")
    parser.add_argument(
        "--commit-message", default=None, help="commit message (default: 'Upload KIND with xvlm2vec publish')"
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="model: publish Python files that are not the installed xvlm2vec's code (you vouch for them)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="write the folder that would be uploaded and list it; upload nothing"
    )
    parser.add_argument(
        "--dry-run-dir",
        type=Path,
        default=None,
        help="where --dry-run writes (default: outputs/publish/NAMESPACE/NAME)",
    )
    cards = parser.add_argument_group("card inputs (model: rendered when any is given or the folder has no README.md)")
    cards.add_argument(
        "--results", type=Path, default=None, help="results.json of `xvlm2vec eval` (MMMEB tables, model-index)"
    )
    cards.add_argument("--results-model", default=None, help="this model's name in --results when it holds several")
    cards.add_argument("--recipe", type=Path, default=None, help="training recipe YAML")
    cards.add_argument(
        "--trainer-state", type=Path, default=None, help="trainer_state.json (default: found in FOLDER)"
    )
    cards.add_argument(
        "--base-model", default=None, help="Hub id of the base model (default: the recipe's model_name_or_path)"
    )
    cards.add_argument(
        "--dataset-id",
        dest="datasets",
        action="append",
        default=None,
        help="Hub id of a training dataset (repeatable)",
    )
    cards.add_argument(
        "--mmmeb-dataset-id",
        default=None,
        help="Hub id of MMMEB for the model-index (default: the results' data source)",
    )
    cards.add_argument("--license", default="apache-2.0", help="model license id (default: apache-2.0)")
    cards.add_argument(
        "--languages-file",
        type=Path,
        default=None,
        help="language file naming languages the shipped registry does not know (model card)",
    )
    cards.add_argument(
        "--build-report",
        type=Path,
        default=None,
        help="dataset: build_report.json (default: FOLDER/build_report.json)",
    )


def run(args: argparse.Namespace) -> int:
    """Stage, check, then upload (or, with ``--dry-run``, write and list) the folder."""
    inputs = CardInputs(**{item.name: getattr(args, item.name) for item in fields(CardInputs)})
    try:
        check_arguments(args.kind, args.folder, args.repo_id)  # before anything is created
        if args.dry_run:  # staged beside the target and moved in whole: a refusal leaves nothing behind
            target = dry_run_dir(args)
            with atomic_output_dir(target, CARD_NAME, inputs=(args.folder,)) as scratch:
                staged = stage(args.kind, args.folder, args.repo_id, scratch, inputs, args.trust_remote_code)
            staged.path = target
            print(staged.table())
            visibility = "private" if args.private else "public"
            print(
                f"dry run: {visibility} {REPO_TYPES[args.kind]} repository {args.repo_id} would receive {staged.path}"
            )
            return 0
        with tempfile.TemporaryDirectory(prefix=".xvlm2vec-publish-") as scratch:
            staged = stage(
                args.kind, args.folder, args.repo_id, Path(scratch) / "staged", inputs, args.trust_remote_code
            )
            print(staged.table())
            commit = upload(staged, args.kind, args.repo_id, args.private, args.revision, args.commit_message)
    except (PublishRefused, ValueError, FileNotFoundError) as err:
        raise UsageError(str(err)) from None  # reported as one line, status 2, by the CLI
    except HfHubHTTPError as err:
        print(f"error: the Hub refused the upload to {args.repo_id}: {one_line(err)}", file=sys.stderr)
        return 1
    print(f"published {args.kind} to {commit.repo_url} ({commit.commit_url})")
    return 0
