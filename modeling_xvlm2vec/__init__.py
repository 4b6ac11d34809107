"""The xVLM2Vec model as published: configuration, model, processing and backbone adapters.

Light questions stay light: importing the package (or ``modeling_xvlm2vec.languages`` /
``modeling_xvlm2vec.instructions``) imports neither torch nor transformers. The public classes are
loaded on first use (PEP 562), and that first use registers ``xvlm2vec`` with transformers'
``AutoConfig`` and ``AutoModel``, and the Phi-3.5-V processor classes with ``AutoProcessor`` /
``AutoImageProcessor`` (:func:`register_auto_classes`), so saved folders load with these installed
classes and the copy of the code inside a folder is not run. The same flat files are copied into
every saved model folder as remote code (for users without this package).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .configuration_xvlm2vec import XVLM2VecConfig
    from .modeling_xvlm2vec import XVLM2VecModel, XVLM2VecOutput

#: Public name -> the submodule that defines it.
_LAZY = {
    "XVLM2VecConfig": "configuration_xvlm2vec",
    "XVLM2VecModel": "modeling_xvlm2vec",
    "XVLM2VecOutput": "modeling_xvlm2vec",
}


def register_auto_classes() -> None:
    """Register the xVLM2Vec and Phi-3.5-V classes with transformers' Auto classes (idempotent)."""
    from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoProcessor

    from .configuration_phi3_v import Phi3VConfig
    from .configuration_xvlm2vec import XVLM2VecConfig
    from .image_processing_phi3_v import Phi3VImageProcessor
    from .modeling_xvlm2vec import XVLM2VecModel
    from .processing_phi3_v import Phi3VProcessor

    AutoConfig.register(XVLM2VecConfig.model_type, XVLM2VecConfig, exist_ok=True)
    AutoModel.register(XVLM2VecConfig, XVLM2VecModel, exist_ok=True)
    AutoImageProcessor.register(Phi3VConfig, slow_image_processor_class=Phi3VImageProcessor, exist_ok=True)
    AutoProcessor.register(Phi3VConfig, Phi3VProcessor, exist_ok=True)


def __getattr__(name: str) -> Any:
    """Load a public class on first use, registering the Auto classes first."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    register_auto_classes()
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


__all__ = ["XVLM2VecConfig", "XVLM2VecModel", "XVLM2VecOutput", "register_auto_classes"]
