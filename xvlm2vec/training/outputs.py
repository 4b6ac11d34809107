"""The training output folder: what marks it as a training output, what a new run keeps, what is refused.

The final model is written into a staging sibling and put in place as a whole
(:func:`xvlm2vec_common.safe_outputs.atomic_output_dir`), so a failed run leaves the previous output as it was;
the run's own ``checkpoint-N`` folders (written by the Trainer during training, resumable), the tiny inputs,
the logs and a teacher cache placed inside the folder are carried over.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from xvlm2vec_common.cli_errors import UsageError
from xvlm2vec_common.safe_outputs import OutputDirError, check_output_dir

#: Every training output holds this file at its top (the training arguments, as JSON).
OUTPUT_MARKER = "training_args.json"
#: Entries of an existing output folder that a run keeps: its checkpoints, tiny inputs and logs.
KEPT = ("checkpoint-*", "tiny_inputs", "runs")


def kept_entries(output_dir: str | Path, teacher_cache: str | None) -> tuple[str, ...]:
    """:data:`KEPT`, plus the teacher cache's top folder when the cache lies inside ``output_dir``."""
    if teacher_cache:
        cache, output = Path(teacher_cache).expanduser().resolve(), Path(output_dir).expanduser().resolve()
        if cache != output and cache.is_relative_to(output):
            return (*KEPT, cache.relative_to(output).parts[0])
    return KEPT


def check_training_output(output_dir: str, teacher_cache: str | None, inputs: Iterable[str | None]) -> None:
    """Refuse (UsageError) an ``--output_dir`` that is a file, is or lies inside an input (model, teacher,
    dataset, teacher cache), would delete an input, or is a non-empty folder that no training run wrote; and a
    ``--teacher_cache`` that is a file or the output folder itself."""
    output = Path(output_dir).expanduser().resolve()
    local_inputs = [Path(item).expanduser().resolve() for item in inputs if item and Path(item).exists()]
    if teacher_cache:
        cache = Path(teacher_cache).expanduser().resolve()
        if cache.exists() and not cache.is_dir():
            raise UsageError(f"--teacher_cache {teacher_cache} is a file, not a folder")
        if cache == output:
            raise UsageError(f"--teacher_cache {teacher_cache} is --output_dir; put the cache in a folder of its own")
    for source in local_inputs:
        if output != source and output.is_relative_to(source):
            raise UsageError(f"--output_dir {output} lies inside the input {source}; pick a folder outside it")
    try:
        check_output_dir(output, OUTPUT_MARKER, kept_entries(output, teacher_cache), local_inputs)
    except OutputDirError as error:
        raise UsageError(str(error).replace("--output-dir", "--output_dir")) from None
