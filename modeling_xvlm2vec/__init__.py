"""The xVLM2Vec model as published: configuration, model, processing and backbone adapters.

Importing this package registers ``xvlm2vec`` with transformers' ``AutoConfig`` and ``AutoModel``.
The same flat files are copied into every saved model folder as remote code.
"""

from transformers import AutoConfig, AutoModel

from .configuration_xvlm2vec import XVLM2VecConfig
from .modeling_xvlm2vec import XVLM2VecModel, XVLM2VecOutput

AutoConfig.register(XVLM2VecConfig.model_type, XVLM2VecConfig, exist_ok=True)
AutoModel.register(XVLM2VecConfig, XVLM2VecModel, exist_ok=True)

__all__ = ["XVLM2VecConfig", "XVLM2VecModel", "XVLM2VecOutput"]
