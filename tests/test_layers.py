"""Layers import downward only, between the packages and inside ``xvlm2vec``.

Packages, bottom to top: modeling_xvlm2vec -> xvlm2vec_common -> dataset_builders -> hub_cards -> xvlm2vec.
Inside ``xvlm2vec``: base modules -> testing -> library (training, evaluation, ...) -> export and
integrations -> entry points (cli, demo). Read from the source (``ast``), so an import inside a
function, a ``TYPE_CHECKING`` block, a relative import or an ``importlib.import_module("...")`` with a
literal name counts as much as one at the top of a file.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["modeling_xvlm2vec", "xvlm2vec_common", "dataset_builders", "hub_cards", "xvlm2vec"]  # bottom to top
#: Inside ``xvlm2vec``, bottom to top: a module may import its own unit (a listed module or subpackage) and the
#: units of the layers below, never anything above it, nor a sibling unit of its own layer (the base modules, which
#: import nothing but each other, excepted).
XVLM2VEC_LAYERS = [
    [
        "xvlm2vec",
        "xvlm2vec.progress",
        "xvlm2vec.resources",
        "xvlm2vec.fingerprint",
        "xvlm2vec.phi3v_layout",
        "xvlm2vec.phi3v_flat_config",
    ],
    ["xvlm2vec.testing"],
    ["xvlm2vec.training", "xvlm2vec.evaluation", "xvlm2vec.convert", "xvlm2vec.export_vllm", "xvlm2vec.instructions"],
    ["xvlm2vec.export", "xvlm2vec.integrations"],
    ["xvlm2vec.demo", "xvlm2vec.cli"],
    ["xvlm2vec.__main__"],
]
#: What the model's own code (copied into every saved model folder) may import besides the standard library:
#: torch, transformers and packages transformers itself requires (PIL for images).
MODEL_FOLDER_IMPORTS = {"torch", "transformers", "PIL", "numpy", "tqdm", "yaml"}


def module_name(path: Path) -> str:
    """The dotted module name of the source file ``path`` under ``ROOT`` (a package's ``__init__`` is the package)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(tree: ast.AST, importer: str = "") -> list[tuple[int, str]]:
    """(line, dotted module name) of every import in ``tree``, literal ``import_module`` calls included.

    Relative imports are resolved against ``importer`` (the importing module's dotted name); ``from a import b``
    counts as ``a.b`` when ``b`` is a module of the checkout, else as ``a``.
    """
    package = importer if (ROOT / Path(*importer.split("."))).is_dir() else importer.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                path = ROOT / Path(*submodule.split("."))
                found.append((node.lineno, submodule if path.is_dir() or path.with_suffix(".py").is_file() else base))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return sorted(set(found))


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the source file ``path``."""
    return imported_names(ast.parse(path.read_text(encoding="utf-8"), str(path)), module_name(path))


def upward_imports(layer: str) -> list[str]:
    """``file:line imports module`` for each import in ``layer`` of a layer above it."""
    above = set(LAYERS[LAYERS.index(layer) + 1 :])
    problems = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        for line, module in imports_of(path):
            if module.split(".")[0] in above:
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return problems


def xvlm2vec_unit(module: str) -> tuple[int, str] | None:
    """(layer index, unit) of the ``xvlm2vec`` module ``module``: the longest listed unit it is or lies in."""
    units = [(layer, unit) for layer, names in enumerate(XVLM2VEC_LAYERS) for unit in names]
    matching = [(layer, unit) for layer, unit in units if module == unit or module.startswith(unit + ".")]
    return max(matching, key=lambda item: len(item[1]), default=None)


def xvlm2vec_modules() -> list[Path]:
    """Every source file of ``xvlm2vec`` (the shipped data links excluded)."""
    return [path for path in sorted((ROOT / "xvlm2vec").rglob("*.py")) if "shipped" not in path.parts]


def xvlm2vec_upward_imports() -> list[str]:
    """``file:line imports module (why)`` for each import inside ``xvlm2vec`` that is not downward."""
    problems = []
    for path in xvlm2vec_modules():
        if xvlm2vec_unit(module_name(path)) is None:
            continue  # reported by test_every_xvlm2vec_module_has_a_layer
        own_layer, own_unit = xvlm2vec_unit(module_name(path))
        for line, module in imports_of(path):
            if module.split(".")[0] != "xvlm2vec" or xvlm2vec_unit(module) is None:
                continue
            layer, unit = xvlm2vec_unit(module)
            if layer > own_layer or (layer == own_layer > 0 and unit != own_unit):
                where = "above" if layer > own_layer else "a sibling on the same layer"
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {module} ({where})")
    return problems


@pytest.mark.parametrize("layer", LAYERS[:-1])
def test_layer_imports_only_layers_below(layer: str) -> None:
    assert (ROOT / layer / "__init__.py").is_file()
    assert upward_imports(layer) == []


def test_every_xvlm2vec_module_has_a_layer() -> None:
    assert [str(path) for path in xvlm2vec_modules() if xvlm2vec_unit(module_name(path)) is None] == []


def test_xvlm2vec_imports_only_its_own_unit_and_layers_below() -> None:
    assert xvlm2vec_upward_imports() == []


def test_model_code_imports_only_torch_transformers_and_their_requirements() -> None:
    imported = {
        module.split(".")[0] for path in (ROOT / "modeling_xvlm2vec").glob("*.py") for _, module in imports_of(path)
    }
    assert {"torch", "transformers"} <= imported
    assert imported - set(sys.stdlib_module_names) - MODEL_FOLDER_IMPORTS - {"modeling_xvlm2vec"} == set()


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


def test_relative_and_submodule_imports_resolve_to_the_module() -> None:
    tree = ast.parse(
        "from ..progress import bar_disabled\nfrom .fixtures import write_parallel\nfrom xvlm2vec import cli\n"
    )
    assert imported_names(tree, "xvlm2vec.testing.training_inputs") == [
        (1, "xvlm2vec.progress"),
        (2, "xvlm2vec.testing.fixtures"),
        (3, "xvlm2vec.cli"),
    ]


def test_an_upward_import_inside_xvlm2vec_is_named() -> None:
    assert xvlm2vec_unit("xvlm2vec.testing.tiny_phi3_v") == (1, "xvlm2vec.testing")
    assert xvlm2vec_unit("xvlm2vec.export_vllm") == (2, "xvlm2vec.export_vllm")  # not the unit xvlm2vec.export
    assert xvlm2vec_unit("xvlm2vec.evaluation.runner") == (2, "xvlm2vec.evaluation")
    assert xvlm2vec_unit("xvlm2vec.shipped.recipes") == (0, "xvlm2vec")
