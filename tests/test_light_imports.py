"""Light questions stay light: a language code or an instruction loads neither torch nor transformers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LANGUAGES = """
import json, sys
sys.path.insert(0, {root!r})
from modeling_xvlm2vec.instructions import get_instruction
from modeling_xvlm2vec.languages import load_languages
from xvlm2vec_common.cli_arguments import language_file
codes = sorted(load_languages().codes)
heavy = sorted(name for name in ("torch", "transformers") if name in sys.modules)
print(json.dumps({{"codes": codes, "instruction": get_instruction("t2i", "query", "it"), "heavy": heavy}}))
"""

CLASSES = """
import json, sys
sys.path.insert(0, {root!r})
import modeling_xvlm2vec
before = "torch" in sys.modules
from transformers import AutoConfig, AutoModel
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
registered_before = "xvlm2vec" in CONFIG_MAPPING
from modeling_xvlm2vec import XVLM2VecModel
print(json.dumps({{"torch_before": before, "registered_before": registered_before,
                  "registered": CONFIG_MAPPING["xvlm2vec"].__name__,
                  "model": AutoModel._model_mapping[CONFIG_MAPPING["xvlm2vec"]] is XVLM2VecModel}}))
"""


def _run(code: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-I", "-c", code.format(root=str(ROOT))], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_language_codes_and_instructions_do_not_import_torch_or_transformers() -> None:
    result = _run(LANGUAGES)
    assert result["heavy"] == []
    assert {"en", "it", "es", "fr", "de"} <= set(result["codes"])
    assert result["instruction"]  # the shipped table has an Italian text-to-image query instruction


def test_first_use_of_a_model_class_registers_the_auto_classes() -> None:
    result = _run(CLASSES)
    assert result == {"torch_before": False, "registered_before": False, "registered": "XVLM2VecConfig", "model": True}


BACKBONE = """
import json, sys
sys.path.insert(0, {root!r})
from modeling_xvlm2vec.backbones import get_backbone
print(json.dumps({{"tag": get_backbone("qwen2_vl").image_tag, "adapter": get_backbone("phi3_v").__name__}}))
"""


def test_a_backbone_adapter_is_found_without_importing_the_model_module_first() -> None:
    assert _run(BACKBONE) == {"tag": "<|vision_start|><|image_pad|><|vision_end|>", "adapter": "Phi3VBackbone"}
