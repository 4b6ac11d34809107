"""An xVLM2Vec model evaluated through vLLM's offline engine (``xvlm2vec eval --engine vllm``).

The model is loaded here as for the default engine: its instructions, image tag and convention make the
runner's prompts, and :meth:`~modeling_xvlm2vec.XVLM2VecModel.format_prompts` turns each row into the exact
string ``encode`` would hand the processor. The folder is exported once for vLLM (``xvlm2vec export vllm``,
kept under ``export_root/<model fingerprint>`` and reused), and the strings, with the images as PNG files,
are embedded by vLLM engines running in the vLLM environment (:mod:`xvlm2vec.integrations.vllm_engine`: one
per visible GPU, data parallel; one on CPU). The fingerprint, which keys the embedding cache, covers the
model's and the engine's (vLLM release, engine arguments), so the two engines never share cache entries.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from xvlm2vec.evaluation.embedders import Embedder, XVLM2VecEmbedder, l2_normalize
from xvlm2vec.export_vllm import REPORT_NAME, VLLM_VERSION, export_vllm, serve_arguments
from xvlm2vec.integrations.vllm_engine import VLLMEngines, engine_keywords


def default_export_root() -> Path:
    """Where exports are kept by default: ``$XDG_CACHE_HOME/xvlm2vec/vllm-exports`` (``~/.cache`` by default)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "xvlm2vec" / "vllm-exports"


def ensure_export(folder: str, fingerprint: str, export_root: Path) -> tuple[Path, dict]:
    """The vLLM export of ``folder`` (model ``fingerprint``) under ``export_root``, written first if missing;
    returns its folder and report."""
    output = export_root / fingerprint[:32]
    if not (output / REPORT_NAME).is_file():
        export_vllm(folder, output)
    return output, json.loads((output / REPORT_NAME).read_text(encoding="utf-8"))


class VLLMEmbedder(Embedder):
    """An xVLM2Vec model whose rows vLLM embeds: same prompts as :class:`XVLM2VecEmbedder`, another engine.

    ``engine`` holds ``LLM`` keyword arguments added to (and overriding) the export's own (pooling runner,
    ``dtype`` of the model); ``python`` is the vLLM environment's interpreter.
    """

    kind = "xvlm2vec"
    uses_instructions = True

    def __init__(self, model_embedder: XVLM2VecEmbedder, python: Path, export_root: Path, engine: dict) -> None:
        model = model_embedder.model
        self.model = model
        self.name = model_embedder.name
        self.image_tag = model_embedder.image_tag
        self.instructions = model_embedder.instructions
        self.model_fingerprint = model_embedder.fingerprint
        self.export_dir, report = ensure_export(self.name, self.model_fingerprint, export_root)
        self.engine = {
            **engine_keywords(serve_arguments(report["architecture"])),
            "dtype": str(model.dtype).removeprefix("torch."),
            **engine,
        }
        self._work = tempfile.TemporaryDirectory(prefix="xvlm2vec-vllm-")
        self._images = itertools.count()
        self.engines = VLLMEngines(python, self.export_dir, self.engine, Path(self._work.name))

    @classmethod
    def from_pretrained(
        cls,
        model_name_or_path: str,
        device: torch.device | str | None = None,
        python: Path | None = None,
        export_root: Path | None = None,
        engine: dict | None = None,
    ) -> VLLMEmbedder:
        """Load the folder (on the CPU: only its prompts and fingerprint are used here), export it, start vLLM.

        ``device`` is ignored (vLLM places the model); ``python`` is required.
        """
        model_embedder = XVLM2VecEmbedder.from_pretrained(model_name_or_path)
        return cls(model_embedder, python, export_root or default_export_root(), engine or {})

    @property
    def fingerprint(self) -> str:
        """Digest of the model's fingerprint, the engine (vLLM release) and its arguments."""
        state = json.dumps([self.model_fingerprint, "vllm", VLLM_VERSION, self.engine], sort_keys=True)
        return hashlib.sha256(state.encode()).hexdigest()

    def _image_file(self, image: Image.Image | None) -> str | None:
        """``image`` written as a PNG file in the working folder (lossless: vLLM reads the same pixels)."""
        if image is None:
            return None
        path = Path(self._work.name) / f"image{next(self._images)}.png"
        image.save(path, format="PNG")
        return str(path)

    def prepare(
        self, texts: list[str | None], images: list[Image.Image | None], batch_size: int, num_workers: int = 0
    ) -> list[dict]:
        """The rows as vLLM requests: the exact prompt strings of ``encode`` and the images as PNG files."""
        prompts = self.model.format_prompts(list(texts), list(images))
        return [{"prompt": prompt, "image": self._image_file(image)} for prompt, image in zip(prompts, images)]

    def embed_prepared(self, prepared: list[dict]) -> np.ndarray:
        """vLLM's embeddings of :meth:`prepare`'s rows, L2-normalised; their image files are removed."""
        try:
            return l2_normalize(self.engines.embed(prepared))
        finally:
            for row in prepared:
                if row["image"]:
                    Path(row["image"]).unlink(missing_ok=True)

    def embed(self, texts: list[str | None], images: list[Image.Image | None], batch_size: int) -> np.ndarray:
        """Embed rows through vLLM (``batch_size`` rows a request)."""
        chunks = [
            self.embed_prepared(self.prepare(texts[start : start + batch_size], images[start : start + batch_size], 0))
            for start in range(0, len(texts), batch_size)
        ]
        return np.concatenate(chunks)

    def close(self) -> None:
        """Stop the engines and remove the working folder."""
        self.engines.close()
        self._work.cleanup()


__all__ = ["VLLMEmbedder", "default_export_root", "ensure_export"]
