"""Is a trajectory shift larger than the pipeline's own noise? A paired sign-flip permutation test, as pure functions.

For one preset and one predictor, each clip ``c`` gives a pair: the shift its edit caused (``shift_ade``) and the
noise floor, the shift a *null edit* of the same clip caused (``floor_ade_m``; see ``evaluate.noise_floor``). The
differences ``d_c = shift_c - floor_c`` are tested against H0 "the edit moves the prediction no more than the null
edit does": under H0 each ``d_c`` is as likely positive as negative, so every assignment of signs is equally
likely (Fisher's randomisation test for paired data; Good, *Permutation, Parametric and Bootstrap Tests of
Hypotheses*, 3rd ed., 2005, §3.2). The statistic is the mean difference, the alternative one-sided
(``greater``: the edit moves it more), the p-value the share of sign assignments whose mean is at least the observed
one — all ``2^n`` of them for ``n <= exact_max_n``, else ``n_resamples`` random ones drawn with a fixed seed and
counted as ``(1 + hits) / (1 + n_resamples)``, which never reports 0 (Phipson & Smyth, "Permutation p-values should
never be zero", Stat. Appl. Genet. Mol. Biol. 9(1), 2010).

With ``n`` pairs the smallest attainable p-value is ``2^-n`` (exact test): at least 5 clips are needed for
significance at 0.05, one-sided.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from lanepipe.errors import InputError

Alternative = Literal["greater", "less", "two-sided"]

#: Significance level of the report's "significant at p < 0.05".
ALPHA = 0.05
#: Up to this many pairs every sign assignment is enumerated (2^16 = 65536 of them).
EXACT_MAX_N = 16
#: Random sign assignments drawn beyond :data:`EXACT_MAX_N` pairs.
N_RESAMPLES = 20_000
#: Relative tolerance when comparing a permuted statistic with the observed one (float sums in another order).
_TOL = 1e-9


@dataclass(frozen=True)
class SignFlipResult:
    """Outcome of :func:`sign_flip_test`.

    Attributes:
        p_value: in (0, 1]; 1.0 for no pairs or all-zero differences.
        statistic: the mean difference observed (units of the input, e.g. metres).
        n: number of pairs.
        exact: True when every sign assignment was enumerated.
        min_p: the smallest p-value this test could report for ``n`` pairs (``2^-n`` exact, else
            ``1 / (1 + n_resamples)``).
    """

    p_value: float
    statistic: float
    n: int
    exact: bool
    min_p: float


def _exceed(perm: npt.NDArray[np.float64], observed: float, alternative: Alternative) -> npt.NDArray[np.bool_]:
    tol = _TOL * max(1.0, abs(observed))
    if alternative == "greater":
        return perm >= observed - tol
    if alternative == "less":
        return perm <= observed + tol
    return np.abs(perm) >= abs(observed) - tol


def sign_flip_test(diffs: Sequence[float] | npt.ArrayLike, *, alternative: Alternative = "greater",
                   exact_max_n: int = EXACT_MAX_N, n_resamples: int = N_RESAMPLES, seed: int = 0) -> SignFlipResult:
    """Paired sign-flip permutation test of the mean of ``diffs`` (see the module docstring).

    Args:
        diffs: ``(n,)`` paired differences, e.g. ``shift - floor`` per clip (metres).
        alternative: ``greater`` (H1: mean > 0), ``less`` (mean < 0) or ``two-sided`` (|mean| large).
        exact_max_n: enumerate all ``2^n`` sign assignments up to this ``n``; Monte Carlo beyond.
        n_resamples: random sign assignments of the Monte Carlo test.
        seed: seed of the Monte Carlo draws (the same inputs always give the same p-value).

    Returns:
        :class:`SignFlipResult`.

    Raises:
        InputError: ``diffs`` not one-dimensional or not finite, or ``n_resamples < 1``.
    """
    d = np.asarray(diffs, dtype=np.float64)
    if d.ndim != 1 or not np.all(np.isfinite(d)):
        raise InputError("sign_flip_test diffs", "a 1-D sequence of finite numbers",
                         f"shape {d.shape}" if d.ndim != 1 else "NaN or inf")
    if n_resamples < 1:
        raise InputError("sign_flip_test n_resamples", "at least 1", str(n_resamples))
    n = int(d.size)
    if n == 0:
        return SignFlipResult(p_value=1.0, statistic=0.0, n=0, exact=True, min_p=1.0)
    observed = float(d.mean())
    if n <= exact_max_n:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)), dtype=np.float64)  # (2^n, n)
        perm = signs @ d / n
        p = float(_exceed(perm, observed, alternative).mean())
        return SignFlipResult(p_value=p, statistic=observed, n=n, exact=True, min_p=2.0 ** -n)
    rng = np.random.default_rng(seed)
    hits = 0
    done = 0
    while done < n_resamples:  # in chunks, so a large n_resamples x n never builds one huge matrix
        m = min(4096, n_resamples - done)
        signs = rng.choice(np.array([1.0, -1.0]), size=(m, n))
        hits += int(_exceed(signs @ d / n, observed, alternative).sum())
        done += m
    return SignFlipResult(p_value=(1 + hits) / (1 + n_resamples), statistic=observed, n=n, exact=False,
                          min_p=1.0 / (1 + n_resamples))


def _number(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def shift_significance(rows: Iterable[dict[str, Any]], *, alpha: float = ALPHA, exact_max_n: int = EXACT_MAX_N,
                       n_resamples: int = N_RESAMPLES, seed: int = 0) -> list[dict[str, Any]]:
    """``rows`` (results rows) with ``p_value``, ``significant`` and ``p_pairs`` on every evaluate row.

    Evaluate rows with status ``ok`` and both ``shift_ade`` and ``floor_ade_m`` are grouped by (instruction,
    predictor); within a group the clips are the pairs of :func:`sign_flip_test` (one-sided: the edit's shift
    exceeds the null edit's). Every row of the group gets the group's p-value, ``significant = p < alpha`` and the
    number of pairs; evaluate rows outside any group (failed, no floor) get None. Other rows are returned as given.
    """
    rows = [dict(r) for r in rows]
    groups: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for r in rows:
        if r.get("stage") != "evaluate" or r.get("status") != "ok":
            continue
        s, f = _number(r.get("shift_ade")), _number(r.get("floor_ade_m"))
        if s is None or f is None:
            continue
        groups.setdefault((str(r.get("instruction")), str(r.get("predictor"))), []).append((str(r.get("clip")), s - f))
    tests: dict[tuple[str, str], SignFlipResult] = {}
    for key, pairs in groups.items():
        per_clip = dict(pairs)  # one pair per clip (a resumed run never holds two rows of one clip)
        tests[key] = sign_flip_test(list(per_clip.values()), exact_max_n=exact_max_n, n_resamples=n_resamples,
                                    seed=seed)
    for r in rows:
        if r.get("stage") != "evaluate":
            continue
        res = tests.get((str(r.get("instruction")), str(r.get("predictor"))))
        in_group = res is not None and r.get("status") == "ok" and _number(r.get("floor_ade_m")) is not None \
            and _number(r.get("shift_ade")) is not None
        r["p_value"] = res.p_value if in_group and res is not None else None
        r["significant"] = bool(res.p_value < alpha) if in_group and res is not None else None
        r["p_pairs"] = res.n if in_group and res is not None else None
    return rows
