"""Cross-modal retrieval in a shared space: similarity, ranks, recall@k (chapters 21_cca,
22_contrastive).

Row ``i`` of the query matrix and row ``i`` of the gallery matrix are the two views of the
same item (one utterance's audio and its transcript, one window's physiology and the voice
clip spoken in it). A query *retrieves* the gallery rows in order of similarity; the rank
of its own partner (0 = first) is what recall@k counts: the fraction of queries whose
partner is among the top ``k``. With ``n`` candidates and no information, the expected
recall@k is ``k / n`` (:func:`chance_recall`).

Ties are broken pessimistically (a partner tied with another row counts as ranked below
it), so constant embeddings give chance-level ranks at worst and never a perfect score.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from mmlab.errors import SignalError

__all__ = ["check_pair", "similarity", "retrieval_ranks", "recall_at_k", "chance_recall",
           "retrieval_report"]


def check_pair(a, b, what: str = "views") -> tuple[np.ndarray, np.ndarray]:
    """Two 2-D float arrays with the same number of rows and only finite values.

    Raises :class:`~mmlab.errors.SignalError` naming the problem (shape, row count, NaN).
    """
    out = []
    for name, x in (("first", a), ("second", b)):
        x = np.asarray(x, dtype=float)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2:
            raise SignalError(f"{what}: the {name} view has shape {x.shape}; expected (n_samples, n_features)")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise SignalError(f"{what}: the {name} view is empty (shape {x.shape})")
        bad = ~np.isfinite(x)
        if bad.any():
            rows = np.flatnonzero(bad.any(axis=1))
            raise SignalError(f"{what}: the {name} view has NaN/inf in {len(rows)} row(s), "
                              f"first at row {rows[0]}; drop or impute them first")
        out.append(x)
    if out[0].shape[0] != out[1].shape[0]:
        raise SignalError(f"{what}: {out[0].shape[0]} rows in the first view but "
                          f"{out[1].shape[0]} in the second; rows must be paired")
    return out[0], out[1]


def similarity(query, gallery, metric: str = "cosine") -> np.ndarray:
    """``(n_query, n_gallery)`` similarities: ``"cosine"``, ``"dot"`` or ``"euclidean"``
    (negative distance, so larger is always more similar)."""
    q = np.atleast_2d(np.asarray(query, dtype=float))
    g = np.atleast_2d(np.asarray(gallery, dtype=float))
    if q.shape[1] != g.shape[1]:
        raise SignalError(f"similarity: query has {q.shape[1]} dimensions, gallery {g.shape[1]}")
    if metric == "cosine":
        qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        gn = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
        return qn @ gn.T
    if metric == "dot":
        return q @ g.T
    if metric == "euclidean":
        d2 = (q * q).sum(1)[:, None] + (g * g).sum(1)[None, :] - 2.0 * q @ g.T
        return -np.sqrt(np.maximum(d2, 0.0))
    raise SignalError(f"similarity: unknown metric {metric!r}; use 'cosine', 'dot' or 'euclidean'")


def retrieval_ranks(query, gallery, metric: str = "cosine") -> np.ndarray:
    """Rank (0 = best) of each query's own partner ``gallery[i]`` among all gallery rows.

    The rank counts the gallery rows at least as similar as the partner (other than the
    partner itself), so ties count against the query.
    """
    q, g = check_pair(query, gallery, "retrieval")
    s = similarity(q, g, metric)
    own = np.diag(s)[:, None]
    others = s >= own
    np.fill_diagonal(others, False)
    return others.sum(axis=1)


def recall_at_k(query, gallery, ks: Iterable[int] = (1, 5, 10), metric: str = "cosine") -> dict[int, float]:
    """Fraction of queries whose partner is among the top ``k`` gallery rows, for each k."""
    ranks = retrieval_ranks(query, gallery, metric)
    return {int(k): float(np.mean(ranks < int(k))) for k in ks}


def chance_recall(n: int, k: int) -> float:
    """Expected recall@k of a random ranking of ``n`` candidates: ``min(k, n) / n``."""
    if n < 1:
        raise SignalError(f"chance_recall: need at least one candidate, got n={n}")
    return min(int(k), int(n)) / float(n)


def retrieval_report(a, b, ks: Iterable[int] = (1, 5, 10), metric: str = "cosine",
                     names: tuple[str, str] = ("a", "b")) -> dict[str, float]:
    """Recall@k in both directions plus chance: keys like ``"a->b@1"``, ``"b->a@1"``,
    ``"chance@1"`` and ``"n"`` (the number of candidates)."""
    ks = [int(k) for k in ks]
    x, y = check_pair(a, b, "retrieval")
    out: dict[str, float] = {"n": int(len(x))}
    for (qn, gn), (q, g) in (((names[0], names[1]), (x, y)), ((names[1], names[0]), (y, x))):
        for k, r in recall_at_k(q, g, ks, metric).items():
            out[f"{qn}->{gn}@{k}"] = r
    for k in ks:
        out[f"chance@{k}"] = chance_recall(len(x), k)
    return out
