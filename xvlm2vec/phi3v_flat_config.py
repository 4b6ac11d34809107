"""The flat Phi-3.5-V configuration (``model_type`` ``phi3_v``) of the original release, as a transformers config.

``xvlm2vec export vllm`` writes this file into a Phi-3.5-V export as ``configuration_phi3_v.py``, with
``auto_map`` pointing at :class:`Phi3VConfig`, so that ``AutoConfig.from_pretrained(export,
trust_remote_code=True)`` (what vLLM's ``Phi3VForCausalLM`` runs) reads the flat ``config.json``: the
Phi-3 decoder's fields at the top level beside ``img_processor`` and ``embd_layer``. The file imports
only transformers (it runs inside the serving engine, where this project is not installed).
"""

from __future__ import annotations

from transformers import PretrainedConfig


class Phi3VConfig(PretrainedConfig):
    r"""Flat configuration of Phi-3.5-vision: the Phi-3 decoder plus the CLIP image embedding blocks.

    Args:
        vocab_size (`int`, defaults to 32064): rows of the token embedding table.
        hidden_size (`int`, defaults to 3072): decoder width.
        intermediate_size (`int`, defaults to 8192): decoder MLP width.
        num_hidden_layers (`int`, defaults to 32): decoder layers.
        num_attention_heads (`int`, defaults to 32): attention heads.
        num_key_value_heads (`int`, *optional*): key/value heads (default: `num_attention_heads`).
        resid_pdrop, embd_pdrop, attention_dropout (`float`, default 0.0): dropout rates (unused at inference).
        hidden_act (`str`, defaults to `"silu"`): decoder MLP activation.
        max_position_embeddings (`int`, defaults to 131072): longest sequence.
        original_max_position_embeddings (`int`, defaults to 4096): training length before LongRoPE.
        initializer_range (`float`, defaults to 0.02): weight init standard deviation.
        rms_norm_eps (`float`, defaults to 1e-5): RMSNorm epsilon.
        rope_theta (`float`, defaults to 10000.0): RoPE base.
        rope_scaling (`dict`, *optional*): LongRoPE as `{"type": "su", "short_factor": [...], "long_factor": [...]}`.
        sliding_window (`int`, *optional*): attention window.
        embd_layer (`dict`, *optional*): HD transform settings (`hd_transform_order`, separators, ...).
        img_processor (`dict`, *optional*): CLIP tower settings (`image_dim_out`, `num_img_tokens`, `layer_idx`, ...).
    """

    model_type = "phi3_v"
    keys_to_ignore_at_inference = ["past_key_values"]

    def __init__(
        self,
        vocab_size: int = 32064,
        hidden_size: int = 3072,
        intermediate_size: int = 8192,
        num_hidden_layers: int = 32,
        num_attention_heads: int = 32,
        num_key_value_heads: int | None = None,
        resid_pdrop: float = 0.0,
        embd_pdrop: float = 0.0,
        attention_dropout: float = 0.0,
        hidden_act: str = "silu",
        max_position_embeddings: int = 131072,
        original_max_position_embeddings: int = 4096,
        initializer_range: float = 0.02,
        rms_norm_eps: float = 1e-5,
        use_cache: bool = True,
        tie_word_embeddings: bool = False,
        rope_theta: float = 10000.0,
        rope_scaling: dict | None = None,
        sliding_window: int | None = None,
        bos_token_id: int = 1,
        eos_token_id: int = 32000,
        pad_token_id: int = 32000,
        embd_layer: dict | None = None,
        img_processor: dict | None = None,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_attention_heads if num_key_value_heads is None else num_key_value_heads
        self.resid_pdrop = resid_pdrop
        self.embd_pdrop = embd_pdrop
        self.attention_dropout = attention_dropout
        self.hidden_act = hidden_act
        self.max_position_embeddings = max_position_embeddings
        self.original_max_position_embeddings = original_max_position_embeddings
        self.initializer_range = initializer_range
        self.rms_norm_eps = rms_norm_eps
        self.use_cache = use_cache
        self.rope_theta = rope_theta
        self.rope_scaling = rope_scaling
        self.sliding_window = sliding_window
        self.embd_layer = dict(embd_layer or {})
        self.img_processor = dict(img_processor or {})
        super().__init__(
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )


__all__ = ["Phi3VConfig"]
