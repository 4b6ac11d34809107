"""The xVLM2Vec model as published: configuration, model, processing and backbone adapters.

Importing this package registers ``xvlm2vec`` with transformers' ``AutoConfig`` and ``AutoModel``,
and the Phi-3.5-V processor classes with ``AutoProcessor`` / ``AutoImageProcessor``, so saved
folders load with these installed classes and the copy of the code inside a folder is not run.
The same flat files are copied into every saved model folder as remote code (for users without
this package).
"""

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoProcessor

from .configuration_phi3_v import Phi3VConfig
from .configuration_xvlm2vec import XVLM2VecConfig
from .image_processing_phi3_v import Phi3VImageProcessor
from .modeling_xvlm2vec import XVLM2VecModel, XVLM2VecOutput
from .processing_phi3_v import Phi3VProcessor

AutoConfig.register(XVLM2VecConfig.model_type, XVLM2VecConfig, exist_ok=True)
AutoModel.register(XVLM2VecConfig, XVLM2VecModel, exist_ok=True)
AutoImageProcessor.register(Phi3VConfig, slow_image_processor_class=Phi3VImageProcessor, exist_ok=True)
AutoProcessor.register(Phi3VConfig, Phi3VProcessor, exist_ok=True)

__all__ = ["XVLM2VecConfig", "XVLM2VecModel", "XVLM2VecOutput"]
