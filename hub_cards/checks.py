"""Refuse folders that would not load once published.

Each ``check_*_folder`` returns the list of problems found (empty: the folder is publishable); every
problem names the file, config or field at fault. The checks follow what the loaders themselves do:
transformers' remote-code file discovery for models, ``datasets``' YAML ``configs`` resolution for
datasets, and ``evaluate``'s ``<repo name>.py`` rule for metrics.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import yaml
from huggingface_hub import DatasetCard, RepoCard

CARD_NAME = "README.md"
# Formats that unpickle on load (or may): never published.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
SAFETENSORS_INDEX = "model.safetensors.index.json"
# Processor files saved beside the model (the first two hold the image processor); each may carry an auto_map.
PROCESSOR_CONFIGS = ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json")


class PublishRefused(ValueError):
    """A folder that would not load after publishing; ``problems`` lists every reason."""

    def __init__(self, folder: str | Path, problems: list[str]):
        self.folder = str(folder)
        self.problems = list(problems)
        super().__init__(f"refusing to publish {self.folder}: {'; '.join(self.problems)}")


def _relative_files(folder: Path) -> list[str]:
    """All files under ``folder`` as sorted POSIX paths relative to it."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def pickle_files(folder: Path) -> list[str]:
    """Files under ``folder`` in a pickle-based format (``.bin``, ``.pt``, ...)."""
    return [name for name in _relative_files(folder) if name.lower().endswith(PICKLE_SUFFIXES)]


def card_problems(folder: Path, repo_type: str) -> list[str]:
    """Problems with ``folder/README.md``: missing, or YAML metadata that does not parse as a card."""
    path = folder / CARD_NAME
    if not path.is_file():
        return [f"{CARD_NAME}: missing (no card)"]
    card_class = DatasetCard if repo_type == "dataset" else RepoCard
    try:
        card_class.load(path, repo_type=repo_type)
    except (ValueError, yaml.YAMLError) as err:
        return [f"{CARD_NAME}: YAML metadata does not parse: {err}"]
    return []


def untrusted_code_files(folder: str | Path) -> list[str]:
    """Python files of a model folder that are not byte-identical copies of the installed ``modeling_xvlm2vec``.

    Whoever loads the published model with ``trust_remote_code=True`` runs these files.
    """
    folder = Path(folder)
    spec = importlib.util.find_spec("modeling_xvlm2vec")
    installed = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
    foreign = []
    for path in sorted(folder.rglob("*.py")):
        name = path.relative_to(folder).as_posix()
        original = installed / name if installed is not None else None
        if original is None or not original.is_file() or original.read_bytes() != path.read_bytes():
            foreign.append(name)
    return foreign


def _code_file_problems(folder: Path, module: str, field: str) -> list[str]:
    """Check ``module``'s file and, recursively, the files it imports relatively (as transformers fetches them)."""
    from transformers.dynamic_module_utils import get_relative_imports

    problems: list[str] = []
    pending, seen = [module], set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        path = folder / f"{name.replace('.', '/')}.py"
        if not path.is_file():
            problems.append(f"{path.name}: missing (needed by {field})")
            continue
        pending.extend(get_relative_imports(path))
    return problems


def _auto_map_problems(folder: Path, config_name: str, required: tuple[str, ...] = ()) -> list[str]:
    """Problems with one JSON config's ``auto_map``: ``required`` entries missing, or code files missing."""
    try:
        config = json.loads((folder / config_name).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        return [f"{config_name}: not valid JSON ({err})"]
    auto_map = config.get("auto_map") or {}
    problems = [
        f"{config_name}: auto_map has no {needed} entry (trust_remote_code cannot find the code)"
        for needed in required
        if needed not in auto_map
    ]
    for auto_class, reference in auto_map.items():
        references = reference if isinstance(reference, list) else [reference]
        for ref in filter(None, references):
            if "--" in ref:  # code kept in another repository
                continue
            problems += _code_file_problems(folder, ref.rsplit(".", 1)[0], f"{config_name} auto_map.{auto_class}")
    return problems


def _sentence_transformers_problems(folder: Path) -> list[str]:
    """Problems that stop ``SentenceTransformer(folder_or_repo, trust_remote_code=True)``: modules.json and its
    code.
    """
    path = folder / "modules.json"
    if not path.is_file():
        return ["modules.json: missing (the card says sentence-transformers; re-save the model with save_pretrained)"]
    try:
        modules = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        return [f"modules.json: not valid JSON ({err})"]
    problems = []
    for module in modules:
        reference = str(module.get("type", ""))
        if not reference.startswith("sentence_transformers."):
            problems += _code_file_problems(folder, reference.rsplit(".", 1)[0], "modules.json")
    return problems


def check_model_folder(folder: str | Path) -> list[str]:
    """Problems that stop ``AutoModel.from_pretrained(folder_or_repo, trust_remote_code=True)``, ``encode`` and
    ``SentenceTransformer(folder_or_repo, trust_remote_code=True)``."""
    folder = Path(folder)
    problems = [
        f"{name}: pickle-based weights or data are not published (save safetensors)" for name in pickle_files(folder)
    ]
    if not (folder / "config.json").is_file():
        problems.append("config.json: missing (not a saved model folder)")
    else:
        problems += _auto_map_problems(folder, "config.json", required=("AutoConfig", "AutoModel"))
        problems += _sentence_transformers_problems(folder)
    for name in PROCESSOR_CONFIGS:
        if (folder / name).is_file():
            problems += _auto_map_problems(folder, name)
    has_tokenizer = (folder / "tokenizer_config.json").is_file()
    has_image_processor = any((folder / name).is_file() for name in PROCESSOR_CONFIGS[:2])
    if not (has_tokenizer and has_image_processor):
        problems.append(
            "no processor saved (tokenizer_config.json and processor_config.json or preprocessor_config.json): "
            "encode() needs the backbone's processor; call model.set_processor(processor) before save_pretrained"
        )
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        problems.append("no *.safetensors weights")
    index_path = folder / SAFETENSORS_INDEX
    if index_path.is_file():
        weight_map = json.loads(index_path.read_text(encoding="utf-8")).get("weight_map", {})
        for shard in sorted(set(weight_map.values())):
            if not (folder / shard).is_file():
                problems.append(f"{SAFETENSORS_INDEX}: shard {shard} missing")
    return problems + card_problems(folder, "model")


def check_dataset_folder(folder: str | Path) -> list[str]:
    """Problems that stop ``load_dataset(folder_or_repo, config)``: card YAML, ``configs`` and their data files."""
    from datasets.data_files import resolve_pattern, sanitize_patterns
    from datasets.utils.metadata import MetadataConfigs

    folder = Path(folder)
    problems = [f"{name}: pickle-based files are not published" for name in pickle_files(folder)]
    card_errors = card_problems(folder, "dataset")
    if card_errors:
        return problems + card_errors
    card = DatasetCard.load(folder / CARD_NAME, repo_type="dataset")
    try:
        configs = MetadataConfigs.from_dataset_card_data(card.data)
    except ValueError as err:
        return problems + [f"{CARD_NAME}: invalid configs: {err}"]
    if not configs:
        problems.append(f"{CARD_NAME}: YAML has no configs (load_dataset would not know the data files)")
    for name, config in configs.items():
        if "data_files" not in config:
            problems.append(f"{CARD_NAME}: config {name!r} has no data_files")
            continue
        for split, patterns in sanitize_patterns(config["data_files"]).items():
            for pattern in patterns:
                try:
                    resolve_pattern(pattern, base_path=str(folder))
                except FileNotFoundError:
                    problems.append(f"{CARD_NAME}: config {name!r} split {split!r}: no file matches {pattern!r}")
    return problems


def check_metric_folder(folder: str | Path, module_name: str) -> list[str]:
    """Problems that stop ``evaluate.load(namespace/module_name)``: the module file must be ``module_name.py``."""
    folder = Path(folder)
    problems = [f"{name}: pickle-based files are not published" for name in pickle_files(folder)]
    module = folder / f"{module_name}.py"
    if not module.is_file():
        found = sorted(p.name for p in folder.glob("*.py") if p.name != "app.py")
        problems.append(
            f"{module.name}: missing; evaluate.load('<namespace>/{module_name}') reads the module named after the "
            f"repository (found: {found or 'no module'})"
        )
    return problems + card_problems(folder, "space")
