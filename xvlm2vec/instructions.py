"""``xvlm2vec instructions``: instruction tables for new languages.

``translate`` translates the English instructions of the registry with an MT model (the one that
translates the corpus) into a reviewable language file; ``apply`` writes a language file's
instructions into a saved model's ``config.json``, so ``encode``, eval and the model card use them.

Protection: an instruction's image tag line (``<|image_1|>`` + newline) is taken off before
translation and put back after it, as the corpus translation does; ``{text}`` is sent as is and
every output is checked: one that lost (or gained) a ``{text}`` placeholder or an image tag is
refused, never written.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from dataset_builders.translate import add_trust_argument, load_translator, output_text, translator_source
from modeling_xvlm2vec.languages import (
    IMAGE_TAG,
    Language,
    LanguageRegistry,
    load_languages,
    merge_entries,
    placeholder_problems,
    read_language_file,
    table_with_entries,
    write_language_file,
)
from xvlm2vec_common.cli_arguments import language_codes, language_file, language_file_or_new, torch_device
from xvlm2vec_common.cli_errors import UsageError
from xvlm2vec_common.safe_outputs import write_text_atomic

TAG_LINE = IMAGE_TAG + "\n"


@dataclass
class Refusal:
    """One translated instruction refused: where it belongs, the model's output and what it lost."""

    lang: str
    task: str
    side: str
    output: str
    problems: list[str]

    def __str__(self) -> str:
        return f"{self.lang} {self.task}/{self.side}: {'; '.join(self.problems)} in {self.output!r}"


def translate_instructions(
    translator, english: Language, lang: str
) -> tuple[dict[str, dict[str, str]], list[Refusal]]:
    """Translate every instruction of ``english`` into ``lang``; return the accepted table and the refusals."""
    slots = [(task, side, text) for task, sides in english.instructions.items() for side, text in sides.items()]
    requests = [text[len(TAG_LINE) :] if text.startswith(TAG_LINE) else text for _, _, text in slots]
    outputs = [output_text(output) for output in translator.translate(requests, lang)]
    if len(outputs) != len(slots):
        raise RuntimeError(f"translator returned {len(outputs)} outputs for {len(slots)} instructions")
    accepted: dict[str, dict[str, str]] = {}
    refused = []
    for (task, side, text), (output, truncated) in zip(slots, outputs):
        translated = output.strip()
        if text.startswith(TAG_LINE) and not translated.startswith(TAG_LINE):
            translated = TAG_LINE + translated
        problems = placeholder_problems(text, translated)
        if not translated.removeprefix(TAG_LINE).strip():
            problems.append("empty translation")
        if truncated:
            problems.append("cut by the token limit")
        if problems:
            refused.append(Refusal(lang, task, side, output, problems))
        else:
            accepted.setdefault(task, {})[side] = translated
    return accepted, refused


def run_translate(args: argparse.Namespace) -> int:
    """Translate, check, and write the language file (only when nothing was refused, unless ``--partial``)."""
    languages = language_codes(args.languages)
    if not languages or "en" in languages:
        raise UsageError("--languages: give target language codes other than en")
    model, trust = translator_source(args.model, args.trust_remote_code)
    registry = load_languages(args.languages_file)
    translator = load_translator(
        model, device=args.device, max_new_tokens=args.max_new_tokens, registry=registry, trust_remote_code=trust
    )
    entries = read_language_file(args.output) if args.output.is_file() else {}
    refusals: list[Refusal] = []
    for lang in languages:
        accepted, refused = translate_instructions(translator, registry["en"], lang)
        refusals += refused
        base = entries.get(lang) or Language(lang, name=registry.name(lang) if lang in registry else "")
        entries[lang] = merge_entries(base, Language(lang, instructions=accepted))
    for refusal in refusals:
        print(f"refused: {refusal}")
    if refusals and not args.partial:
        raise UsageError(
            f"{len(refusals)} translated instruction(s) refused (lost a placeholder or image tag, empty, or "
            f"cut by the token limit); nothing written to {args.output} "
            "(use --partial to write the others and add these by hand)"
        )
    write_language_file(
        args.output, entries.values(), about=f"Instructions translated by {args.model}; review before use."
    )
    print(f"wrote {args.output}: {', '.join(languages)} ({len(refusals)} refused)")
    return 0


def apply_instructions(model_dir: Path, registry: LanguageRegistry, entries: dict[str, Language]) -> dict:
    """Add the instructions of ``entries`` to ``model_dir/config.json`` (atomically); return the new table."""
    path = model_dir / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("model_type") != "xvlm2vec":
        raise ValueError(f"{path}: model_type {config.get('model_type')!r} is not xvlm2vec")
    table = table_with_entries(config.get("instructions") or registry.instruction_table(), entries)
    config["instructions"] = table
    write_text_atomic(path, json.dumps(config, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
    return table


def run_apply(args: argparse.Namespace) -> int:
    """Write the file's instructions (all its languages, or ``--languages``) into the model's config."""
    entries = read_language_file(args.languages_file)
    if args.languages:
        wanted = language_codes(args.languages)
        missing = [code for code in wanted if code not in entries]
        if missing:
            raise UsageError(f"{args.languages_file} has no entry for {missing}")
        entries = {code: entries[code] for code in wanted}
    entries = {code: entry for code, entry in entries.items() if entry.instructions}
    if not entries:
        raise UsageError(f"{args.languages_file} holds no instructions to apply")
    try:
        registry = load_languages(args.languages_file)  # checks every instruction against English's
        apply_instructions(args.model, registry, entries)
    except (OSError, ValueError) as err:
        raise UsageError(f"{err}") from err
    print(f"{args.model / 'config.json'}: instructions for {', '.join(entries)}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``xvlm2vec instructions {translate,apply}``."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    translate = sub.add_parser(
        "translate",
        help="translate the English instructions into a reviewable language file",
        description="translate the English instructions into a reviewable language file",
    )
    translate.add_argument(
        "--model", required=True, help="MT model (Hub id or folder), the one that translates the corpus"
    )
    translate.add_argument("--languages", required=True, help="comma-separated target language codes, e.g. pt,ja")
    translate.add_argument(
        "--output", required=True, type=language_file_or_new, help="language file to write (merged when it exists)"
    )
    translate.add_argument(
        "--languages-file", type=language_file, default=None, help="extra languages (names, an English override)"
    )
    translate.add_argument(
        "--partial", action="store_true", help="write the accepted instructions even when some are refused"
    )
    translate.add_argument("--max-new-tokens", type=int, default=128, help="generation length limit")
    translate.add_argument("--device", type=torch_device, default=None, help="torch device (default cpu)")
    add_trust_argument(translate)
    apply = sub.add_parser(
        "apply",
        help="write a language file's instructions into a saved model's config.json",
        description="write a language file's instructions into a saved model's config.json",
    )
    apply.add_argument("--model", required=True, type=Path, help="saved xVLM2Vec model folder")
    apply.add_argument(
        "--languages-file", required=True, type=language_file, help="language file with the instructions"
    )
    apply.add_argument(
        "--languages", default=None, help="only these codes of the file (default: all with instructions)"
    )


def run(args: argparse.Namespace) -> int:
    """Run the chosen action."""
    return run_translate(args) if args.action == "translate" else run_apply(args)
