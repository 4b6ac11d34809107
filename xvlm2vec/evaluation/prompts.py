"""What each embedder receives for an MMMEB query or candidate, under the released protocol.

Instruction models (``embedder.uses_instructions``) get the task's instruction and one of the three
formatting styles (see ``modeling_xvlm2vec.instructions``), with the canonical image tag replaced by
the model's own. Dual-encoder baselines get no instruction and no style: a query with an image is
the image alone (a VQA question or grounding label is ignored), a text query the text alone, a
classification candidate its language's ``baseline_class_template`` from the language registry
(``image of {text}`` in English), any other candidate raw.

A query the protocol cannot write is skipped (``None``) and not counted: an instruction query
whose text is null, or a baseline query whose one input (image, else text) is missing.
"""

from __future__ import annotations

from modeling_xvlm2vec.instructions import candidate_prompt, fill_template, query_prompt, to_image_tag
from modeling_xvlm2vec.languages import load_languages
from xvlm2vec.evaluation.data import Candidate, QueryRow
from xvlm2vec.evaluation.embedders import Embedder

#: One embedded input: (prompt text or None, image id or None).
Input = tuple[str | None, str | None]


def embedder_styles(embedder: Embedder, styles: list[str]) -> list[str | None]:
    """The styles an embedder is scored under: ``styles`` for instruction models, ``[None]`` (no style) for
    baselines.
    """
    return list(styles) if embedder.uses_instructions else [None]


def query_input(embedder: Embedder, task: str, lang: str, row: QueryRow, style: str | None) -> Input | None:
    """The (prompt, image id) ``embedder`` embeds for query ``row``, or ``None`` when the query is skipped."""
    if not embedder.uses_instructions:
        if row.image_id is not None:
            return None, row.image_id
        return (row.text, None) if row.text is not None else None
    prompt = query_prompt(task, lang, row.text, style, table=embedder.instructions)
    if prompt is None:
        return None
    return to_image_tag(prompt, embedder.image_tag), row.image_id


def candidate_input(embedder: Embedder, task: str, lang: str, candidate: Candidate, style: str | None) -> Input:
    """The (prompt, image id) ``embedder`` embeds for one candidate."""
    if not embedder.uses_instructions:
        if candidate.text is None:
            return None, candidate.image_id
        if task == "c":
            template = (embedder.languages or load_languages()).get(lang).baseline_class_template
            if template is None:
                raise ValueError(f"language {lang!r} has no baseline_class_template in the language registry")
            return fill_template(template, candidate.text), None
        return candidate.text, None
    prompt = candidate_prompt(task, lang, candidate.text, style, table=embedder.instructions)
    return to_image_tag(prompt, embedder.image_tag), candidate.image_id
