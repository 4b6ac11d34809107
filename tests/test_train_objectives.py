"""The distillation objectives against values computed by hand (or by numpy, written out independently).

Tolerance: the inputs are small float32 tensors of magnitude ~1; 1e-6 absolute covers float32 rounding of
a few sums, products, exponentials and logarithms (the hand values of MSE and Matryoshka are exact).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train_fixtures import corpus_splits, skd_config, write_parallel_corpus

from xvlm2vec.training.objectives import (
    DistillationEmbeddings,
    MatryoshkaDistillation,
    MSEDistillation,
    MSEInfoNCEDistillation,
    SimilarityKLDistillation,
    build_objective,
)

TOLERANCE = 1e-6


def tensors(*rows: list[list[float]]) -> list[torch.Tensor]:
    return [torch.tensor(row, dtype=torch.float32) for row in rows]


def embeddings() -> DistillationEmbeddings:
    student_en, student_x, teacher_en = tensors([[1, 2], [0, 0]], [[0, 0], [1, 1]], [[1, 0], [0, 1]])
    return DistillationEmbeddings(student_en, student_x, teacher_en)


def unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def test_mse_is_the_weighted_mean_of_the_two_terms() -> None:
    # loss_en = mean((1-1)^2, (2-0)^2, (0-0)^2, (0-1)^2) = 5/4; loss_x = mean(1, 0, 1, 0) = 1/2
    output = MSEDistillation(en_loss_weight=1.0, x_loss_weight=3.0)(embeddings())
    assert output.terms["loss_en"].item() == pytest.approx(1.25, abs=TOLERANCE)
    assert output.terms["loss_x"].item() == pytest.approx(0.5, abs=TOLERANCE)
    assert output.loss.item() == pytest.approx((1 * 1.25 + 3 * 0.5) / 4, abs=TOLERANCE)  # 0.6875


def test_matryoshka_sums_the_base_over_prefixes() -> None:
    # width 2: (1.25 + 0.5) / 2 = 0.875. width 1: s_en[:, :1] = t[:, :1] -> 0; s_x[:, :1] = (0, 1) vs (1, 0) -> 1;
    # (0 + 1) / 2 = 0.5. Weighted: 1 * 0.875 + 0.5 * 0.5 = 1.125
    output = MatryoshkaDistillation(MSEDistillation(), dims=[2, 1], weights=[1.0, 0.5])(embeddings())
    assert output.loss.item() == pytest.approx(1.125, abs=TOLERANCE)
    expected = {"loss_en_2": 1.25, "loss_x_2": 0.5, "loss_en_1": 0.0, "loss_x_1": 1.0}
    assert {name: round(value.item(), 6) for name, value in output.terms.items()} == expected
    with pytest.raises(ValueError, match="exceed the embedding width"):
        MatryoshkaDistillation(MSEDistillation(), dims=[4])(embeddings())


def test_matryoshka_over_similarity_kl_keeps_the_teacher_whole() -> None:
    batch = embeddings()
    base = SimilarityKLDistillation(temperature=0.5)
    output = MatryoshkaDistillation(base, dims=[1])(batch)
    # the width-1 student against the full-width teacher: the base on (s[:, :1], t) exactly
    cut = DistillationEmbeddings(batch.student_en[:, :1], batch.student_x[:, :1], batch.teacher_en)
    assert output.loss.item() == pytest.approx(base(cut).loss.item(), abs=TOLERANCE)


def test_similarity_kl_by_hand() -> None:
    # teacher = identity: cosines [[1, 0], [0, 1]]; tau = 1: P_i = (e, 1) / (e + 1) on its own row's side.
    # student_en rows both (1, 0): cosines all 1, Q_en = (1/2, 1/2): KL = p ln(2p) + (1-p) ln(2(1-p)), p = e/(e+1)
    student_en, student_x, teacher_en = tensors([[1, 0], [2, 0]], [[0, 1], [1, 0]], [[1, 0], [0, 1]])
    output = SimilarityKLDistillation(temperature=1.0)(DistillationEmbeddings(student_en, student_x, teacher_en))
    p = np.e / (np.e + 1)
    kl_en = p * np.log(2 * p) + (1 - p) * np.log(2 * (1 - p))  # 0.11101 per row, both rows alike
    assert output.terms["loss_en"].item() == pytest.approx(kl_en, abs=TOLERANCE)
    # x rows: (0, 1) -> cosines with student_en (0, 0): Q = (1/2, 1/2); (1, 0) -> (1, 1): Q = (1/2, 1/2)
    assert output.terms["loss_x"].item() == pytest.approx(kl_en, abs=TOLERANCE)
    assert output.loss.item() == pytest.approx(kl_en, abs=TOLERANCE)


def test_similarity_kl_against_numpy() -> None:
    rng = np.random.default_rng(0)
    student_en, student_x, teacher_en = (rng.normal(size=(4, 3)).astype(np.float32) for _ in range(3))
    tau = 0.2

    def softmax(logits: np.ndarray) -> np.ndarray:
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    target = softmax(unit(teacher_en) @ unit(teacher_en).T / tau)

    def kl(side: np.ndarray) -> float:
        q = softmax(unit(side) @ unit(student_en).T / tau)
        return float(np.mean(np.sum(target * (np.log(target) - np.log(q)), axis=1)))

    got = SimilarityKLDistillation(tau, en_loss_weight=2.0, x_loss_weight=1.0)(
        DistillationEmbeddings(*(torch.from_numpy(a) for a in (student_en, student_x, teacher_en)))
    )
    assert got.terms["loss_en"].item() == pytest.approx(kl(student_en), abs=TOLERANCE)
    assert got.terms["loss_x"].item() == pytest.approx(kl(student_x), abs=TOLERANCE)
    assert got.loss.item() == pytest.approx((2 * kl(student_en) + kl(student_x)) / 3, abs=TOLERANCE)


def test_mse_infonce_by_numpy_with_duplicate_english_rows_masked() -> None:
    rng = np.random.default_rng(1)
    student_en, student_x = (rng.normal(size=(3, 4)).astype(np.float32) for _ in range(2))
    teacher_en = rng.normal(size=(3, 4)).astype(np.float32)
    teacher_en[2] = teacher_en[0]  # rows 0 and 2 share their English text
    tau, weight = 0.1, 0.25
    logits = unit(student_x) @ unit(student_en).T / tau
    masked = logits.copy()
    masked[0, 2] = masked[2, 0] = -np.inf  # not each other's negatives
    infonce = float(np.mean([np.log(np.exp(row).sum()) - row[i] for i, row in enumerate(masked)]))
    mse = ((student_en - teacher_en) ** 2).mean() / 2 + ((student_x - teacher_en) ** 2).mean() / 2
    got = MSEInfoNCEDistillation(infonce_weight=weight, temperature=tau)(
        DistillationEmbeddings(*(torch.from_numpy(a) for a in (student_en, student_x, teacher_en)))
    )
    assert got.terms["loss_infonce"].item() == pytest.approx(infonce, abs=TOLERANCE)
    assert got.loss.item() == pytest.approx(mse + weight * infonce, abs=TOLERANCE)
    unmasked = float(np.mean([np.log(np.exp(row).sum()) - row[i] for i, row in enumerate(logits)]))
    assert abs(unmasked - infonce) > 1e-3  # the mask changes the value, so the comparison can fail


def test_recipe_fields_select_and_check_the_objective(tmp_path: Path) -> None:
    pick = lambda **fields: build_objective(skd_config(tmp_path, **fields))  # noqa: E731
    assert type(pick()) is MSEDistillation
    assert type(pick(objective="similarity_kl", similarity_temperature=0.1)).__name__ == "SimilarityKLDistillation"
    assert pick(objective="mse_infonce", infonce_weight=0.5).infonce_weight == 0.5
    matryoshka = pick(objective="matryoshka", matryoshka_dims=[64, 16], matryoshka_base="similarity_kl")
    assert matryoshka.dims == [64, 16] and type(matryoshka.base) is SimilarityKLDistillation
    for fields, message in (
        (dict(objective="matryoshka"), "matryoshka_dims"),
        (dict(matryoshka_dims=[8]), "matryoshka_dims"),
        (dict(objective="matryoshka", matryoshka_dims=[8, 0]), "positive"),
        (dict(objective="matryoshka", matryoshka_dims=[8, 4], matryoshka_weights=[1.0]), "matryoshka_weights"),
        (dict(objective="similarity_kl", image_loss=True), "image_loss"),
        (dict(objective="similarity_kl", similarity_temperature=0.0), "similarity_temperature"),
        (dict(objective="contrastive"), "objective"),
    ):
        with pytest.raises(ValueError, match=message):
            skd_config(tmp_path, **fields)


def test_matryoshka_dims_are_saved_and_truncation_renormalises(tmp_path: Path, run_isolated) -> None:
    from transformers import AutoModel

    from xvlm2vec.testing.tiny_model import save_tiny_model
    from xvlm2vec.training import SKDTrainer

    student = str(save_tiny_model("qwen2_vl", tmp_path / "student", seed=0))
    train, _ = corpus_splits(write_parallel_corpus(tmp_path / "corpus", train=8, dev=2))
    args = skd_config(
        tmp_path / "out", max_steps=2, teacher="same_checkpoint", objective="matryoshka", matryoshka_dims=[64, 16]
    )
    trainer = SKDTrainer(model=student, args=args, train_dataset=train)
    trainer.train()
    assert {"loss_en_64", "loss_x_16"} <= {key for entry in trainer.state.log_history for key in entry}
    saved = trainer.save_student()
    assert json.loads((saved / "config.json").read_text())["matryoshka_dims"] == [64, 16]
    model = AutoModel.from_pretrained(str(saved))
    texts = ["gatto rosso casa", "red cat house"]
    full = model.encode(texts, normalize_embeddings=False)
    cut = model.encode(texts, truncate_dim=16)
    assert cut.shape == (2, 16)
    np.testing.assert_allclose(cut, unit(full[:, :16]), atol=1e-6)  # the prefix, renormalised
    np.testing.assert_allclose(np.linalg.norm(cut, axis=1), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="truncate_dim"):
        model.encode(texts, truncate_dim=65)
    pytest.importorskip("sentence_transformers")
    code = (
        "import json\nfrom sentence_transformers import SentenceTransformer\n"
        f"model = SentenceTransformer({str(saved)!r}, trust_remote_code=True, device='cpu', truncate_dim=16)\n"
        f"print(json.dumps(model.encode({texts!r}, normalize_embeddings=True).tolist()))\n"
    )
    # sentence-transformers cuts the same prefix: equal to encode(truncate_dim=16) up to float32 rounding
    np.testing.assert_allclose(np.array(run_isolated(code, tmp_path)), cut, atol=1e-5)
