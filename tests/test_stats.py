"""The paired sign-flip permutation test and the per-preset significance columns, against hand-computed cases."""

from __future__ import annotations

import pytest

from lanepipe.errors import InputError
from lanepipe.stats import shift_significance, sign_flip_test


def test_three_positive_pairs_reach_one_eighth() -> None:
    # sums of ±1 ±2 ±3: only +1+2+3 reaches the observed 6 -> p = 1/8
    r = sign_flip_test([1.0, 2.0, 3.0])
    assert r.exact and r.n == 3 and r.p_value == pytest.approx(1 / 8) and r.min_p == pytest.approx(1 / 8)
    assert r.statistic == pytest.approx(2.0)


def test_mixed_signs_by_hand() -> None:
    # the 8 sums of ±1 ±2 ±3: 6, 0, 2, -4, 4, -2, 0, -6; observed +1-2+3 = 2
    d = [1.0, -2.0, 3.0]
    assert sign_flip_test(d).p_value == pytest.approx(3 / 8)  # 6, 2, 4
    assert sign_flip_test(d, alternative="less").p_value == pytest.approx(6 / 8)  # 0, 2, -4, -2, 0, -6
    assert sign_flip_test(d, alternative="two-sided").p_value == pytest.approx(6 / 8)  # |s| >= 2


def test_no_difference_is_never_significant() -> None:
    assert sign_flip_test([0.0, 0.0, 0.0, 0.0]).p_value == 1.0
    assert sign_flip_test([]).p_value == 1.0
    # four clips can never reach p < 0.05 one-sided: 1/16 at best
    assert sign_flip_test([5.0, 6.0, 7.0, 8.0]).p_value == pytest.approx(1 / 16)


def test_monte_carlo_beyond_the_exact_limit_is_seeded() -> None:
    d = [0.5 + 0.1 * i for i in range(20)]  # every pair positive
    a = sign_flip_test(d, exact_max_n=16, n_resamples=2000, seed=3)
    b = sign_flip_test(d, exact_max_n=16, n_resamples=2000, seed=3)
    assert not a.exact and a == b
    assert a.p_value == pytest.approx(1 / 2001)  # (1 + 0 hits) / (1 + resamples): never 0
    # the Monte Carlo p-value of a null-looking sample agrees with the exact one
    d2 = [1.0, -1.2, 0.8, -0.9, 1.1, -1.0, 0.3, -0.2, 0.5, -0.4, 0.7, -0.6]
    exact = sign_flip_test(d2).p_value
    mc = sign_flip_test(d2, exact_max_n=4, n_resamples=20000, seed=1).p_value
    assert abs(mc - exact) < 0.02


def test_bad_input_names_itself() -> None:
    with pytest.raises(InputError, match="finite"):
        sign_flip_test([1.0, float("nan")])
    with pytest.raises(InputError, match="1-D"):
        sign_flip_test([[1.0, 2.0]])


def test_shift_significance_groups_by_preset_and_predictor() -> None:
    def ev(clip: str, instr: str, shift: float | None, floor: float | None, status: str = "ok") -> dict[str, object]:
        return {"stage": "evaluate", "clip": clip, "instruction": instr, "predictor": "lane_keep",
                "status": status, "shift_ade": shift, "floor_ade_m": floor}

    rows = [{"stage": "segment", "clip": "a", "status": "ok"},
            ev("a", "none@both", 3.0, 0.0), ev("b", "none@both", 2.0, 0.0), ev("c", "none@both", 1.0, 0.0),
            ev("a", "single white dashed", 0.1, 0.2), ev("b", "single white dashed", 0.3, 0.1),
            ev("c", "single white dashed", None, 0.1, status="failed")]
    out = shift_significance(rows)
    assert "p_value" not in out[0]
    removal = [r for r in out if r.get("instruction") == "none@both"]
    assert [r["p_value"] for r in removal] == pytest.approx([1 / 8] * 3)
    assert all(r["significant"] is False and r["p_pairs"] == 3 for r in removal)
    dashed = [r for r in out if r.get("instruction") == "single white dashed"]
    # d = -0.1, +0.2 (mean 0.05): sums -0.1+0.2, +0.1+0.2, -0.1-0.2, +0.1-0.2 -> 2 of 4 reach 0.1
    assert dashed[0]["p_value"] == pytest.approx(0.5) and dashed[0]["p_pairs"] == 2
    assert dashed[2]["p_value"] is None and dashed[2]["significant"] is None
    # with a lower threshold the same p-value reads as significant
    assert all(r["significant"] for r in shift_significance(rows, alpha=0.2) if r.get("instruction") == "none@both")
