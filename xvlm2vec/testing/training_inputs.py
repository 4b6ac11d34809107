"""What the tiny CPU recipe trains on when no model or data is given: a tiny model and the fixtures' corpus."""

from __future__ import annotations

from pathlib import Path

from .fixtures import write_parallel
from .tiny_model import save_tiny_model

TINY_BACKBONE = "qwen2_vl"
CORPUS_ROWS = 40


def tiny_training_inputs(folder: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """Build (or reuse, when already there) a tiny Qwen2-VL model folder and the built fixtures' parallel corpus.

    Returns ``(model_dir, corpus_dir)`` under ``folder``: ``tiny_model/`` (``xvlm2vec tiny-model``) and
    ``parallel/`` (``xvlm2vec fixtures parallel`` then ``xvlm2vec build parallel``: one config, ``all``).
    """
    from dataset_builders.parallel import build_parallel

    folder = Path(folder)
    model_dir, release_dir, corpus_dir = folder / "tiny_model", folder / "release", folder / "parallel"
    if not (model_dir / "config.json").is_file():
        save_tiny_model(TINY_BACKBONE, model_dir, seed=seed)
    if not (corpus_dir / "README.md").is_file():
        write_parallel(release_dir, rows=CORPUS_ROWS, seed=seed)
        build_parallel(release_dir, corpus_dir, max_rejects=0)
    return model_dir, corpus_dir
