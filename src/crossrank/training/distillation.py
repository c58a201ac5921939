"""Distillation for ``crossrank train``: a teacher reranker's raw logits as soft targets.

Each step's groups (query, [positive, negative, ...]) are scored by the teacher (no gradient) and
the student's logits on the same pairs are pulled towards them: ``"kl"`` is the listwise
KL(softmax(teacher / T) || softmax(student / T)) times T² per group, ``"margin-mse"`` the mean
squared difference between the student's margins (positive − each negative) and the teacher's. The
run's loss is ``(1 − distill_weight) × label loss + distill_weight × distillation loss``.

``teacher="bm25"`` (:class:`BM25Teacher`) takes the first stage itself as the teacher: each group's
BM25 scores, standardized within the group (mean 0, standard deviation 1), so the student learns
BM25's lexical ordering of the candidates beside the labels, and can rank well alone where its
training queries are not like the real ones (pseudo queries: see RESULTS, Quality).

Teacher scores are cached per (query id, document id) and the cache travels in checkpoints, so a
resumed run sees the very same targets as one that never stopped.

>>> teacher = Teacher(config)                    # loads config.teacher with crossrank  # doctest: +SKIP
>>> loss = teacher.loss(student_logits, groups, data)                                 # doctest: +SKIP
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F

Groups = Sequence[Tuple[str, Sequence[str]]]


def distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, kind: str = "kl", temperature: float = 1.0
) -> torch.Tensor:
    """The distillation loss of ``student`` logits against ``teacher`` logits, both (groups, 1 + k).

    Column 0 is the positive (``"margin-mse"`` measures margins against it).
    """
    teacher = teacher.to(device=student.device, dtype=student.dtype)
    if kind == "kl":
        t = temperature
        log_student = F.log_softmax(student / t, dim=-1)
        log_teacher = F.log_softmax(teacher / t, dim=-1)
        kl = F.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean")
        return kl * t * t
    if kind == "margin-mse":
        return F.mse_loss(student[:, :1] - student[:, 1:], teacher[:, :1] - teacher[:, 1:])
    raise ValueError(f"distill_loss must be 'kl' or 'margin-mse', got {kind!r}")


class Teacher:
    """``config.teacher`` loaded with crossrank, its raw scores cached per (query, document) id."""

    def __init__(self, config) -> None:
        from ..reranker import Reranker

        self.kind, self.temperature = config.distill_loss, config.distill_temperature
        # the pairs the student sees: same texts, same token budget
        self.reranker = Reranker(config.teacher, max_length=config.max_length)
        self.scores: Dict[Tuple[str, str], float] = {}

    def logits(self, groups: Groups, data) -> torch.Tensor:
        """The teacher's raw scores of ``groups`` as a (groups, 1 + k) tensor."""
        missing = list(
            dict.fromkeys((q, d) for q, docs in groups for d in docs if (q, d) not in self.scores)
        )
        if missing:
            pairs = [(data.queries[q], data.doc_text(d)) for q, d in missing]
            with torch.no_grad():
                scores = self.reranker.compute_score(pairs, normalize=False)
            self.scores.update(zip(missing, (float(s) for s in scores)))
        return torch.tensor([[self.scores[(q, d)] for d in docs] for q, docs in groups])

    def loss(self, student: torch.Tensor, groups: Groups, data) -> torch.Tensor:
        """The distillation loss of the student's logits for ``groups``."""
        return distillation_loss(student, self.logits(groups, data), self.kind, self.temperature)

    def state(self) -> List[Tuple[str, str, float]]:
        """The cached scores, for a checkpoint."""
        return [(q, d, s) for (q, d), s in self.scores.items()]

    def load(self, state: List[Tuple[str, str, float]]) -> None:
        self.scores = {(q, d): s for q, d, s in state}


BM25_TEACHER = "bm25"


class BM25Teacher(Teacher):
    """The collection's BM25 as the teacher: each group's scores standardized within the group."""

    def __init__(self, config, bm25) -> None:
        self.kind, self.temperature = config.distill_loss, config.distill_temperature
        self.bm25 = bm25
        self.scores: Dict[Tuple[str, str], float] = {}

    def logits(self, groups: Groups, data) -> torch.Tensor:
        for q, docs in groups:
            missing = [d for d in dict.fromkeys(docs) if (q, d) not in self.scores]
            if missing:
                self.scores.update(
                    zip(((q, d) for d in missing), self.bm25.score(data.queries[q], missing))
                )
        raw = torch.tensor([[self.scores[(q, d)] for d in docs] for q, docs in groups])
        spread = raw.std(dim=-1, keepdim=True, unbiased=False).clamp_min(1e-6)
        return (raw - raw.mean(dim=-1, keepdim=True)) / spread


__all__ = ["BM25Teacher", "BM25_TEACHER", "Teacher", "distillation_loss"]
