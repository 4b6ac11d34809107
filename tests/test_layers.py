"""Layers import downward only: modeling_xvlm2vec -> dataset_builders -> hub_cards -> xvlm2vec.

Read from the source (``ast``), so an import inside a function, a ``TYPE_CHECKING`` block or an
``importlib.import_module("...")`` with a literal name counts as much as one at the top of a file.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["modeling_xvlm2vec", "dataset_builders", "hub_cards", "xvlm2vec"]  # bottom to top
#: What the model's own code (copied into every saved model folder) may import besides the standard library:
#: torch, transformers and packages transformers itself requires (PIL for images).
MODEL_FOLDER_IMPORTS = {"torch", "transformers", "PIL", "numpy", "tqdm", "yaml"}


def imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, dotted module name) of every absolute import in ``tree``, literal ``import_module`` calls included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def upward_imports(layer: str) -> list[str]:
    """``file:line imports module`` for each import in ``layer`` of a layer above it."""
    above = set(LAYERS[LAYERS.index(layer) + 1 :])
    problems = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        for line, module in imported_names(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if module.split(".")[0] in above:
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return problems


@pytest.mark.parametrize("layer", LAYERS[:-1])
def test_layer_imports_only_layers_below(layer: str) -> None:
    assert (ROOT / layer / "__init__.py").is_file()
    assert upward_imports(layer) == []


def test_model_code_imports_only_torch_transformers_and_their_requirements() -> None:
    imported = {
        module.split(".")[0]
        for path in (ROOT / "modeling_xvlm2vec").glob("*.py")
        for _, module in imported_names(ast.parse(path.read_text(encoding="utf-8")))
    }
    assert {"torch", "transformers"} <= imported
    assert imported - set(sys.stdlib_module_names) - MODEL_FOLDER_IMPORTS == set()


def test_upward_import_is_found() -> None:
    tree = ast.parse(
        "import os\nfrom xvlm2vec.evaluation import results\n"
        "def f():\n    import hub_cards.staging\n    importlib.import_module('dataset_builders.atomic')\n"
    )
    assert imported_names(tree) == [
        (1, "os"),
        (2, "xvlm2vec.evaluation"),
        (4, "hub_cards.staging"),
        (5, "dataset_builders.atomic"),
    ]
