"""The configuration file imports no modeling code: a model folder's config loads without its backbone adapters."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import json, sys
sys.path.insert(0, {base!r})
import folder.configuration_xvlm2vec as configuration
config = configuration.XVLM2VecConfig(backbone_config={{"model_type": "llava_next"}})
loaded = sorted(name for name in sys.modules if name.startswith("folder."))
print(json.dumps({{"loaded": loaded, "tag": config.image_tag, "backbone": type(config.backbone_config).__name__}}))
"""


def test_configuration_loads_without_backbone_or_modeling_modules(tmp_path: Path) -> None:
    folder = tmp_path / "folder"  # laid out like a saved model folder's code: flat files, no __init__
    folder.mkdir()
    for path in (ROOT / "modeling_xvlm2vec").iterdir():
        if path.suffix in (".py", ".json") and path.name != "__init__.py":
            shutil.copy(path, folder / path.name)
    done = subprocess.run(
        [sys.executable, "-I", "-c", CHECK.format(base=str(tmp_path))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    result = json.loads(done.stdout)
    assert not [name for name in result["loaded"] if "backbone" in name or "modeling" in name or "processing" in name]
    assert result["loaded"] == [
        "folder.configuration_phi3_v",
        "folder.configuration_xvlm2vec",
        "folder.conventions",  # the torch-free table of input conventions the configuration validates against
        "folder.instructions",
        "folder.languages",
    ]
    assert (result["tag"], result["backbone"]) == ("<image>", "LlavaNextConfig")
