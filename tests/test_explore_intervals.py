"""Bootstrap confidence intervals over utterances, paired comparisons and best()'s verdict,
checked against distributions whose answer is known."""

import math

import numpy as np
import pytest

from spear_lab import explore
from spear_lab.explore.events import Segment
from spear_lab.explore.intervals import bootstrap_ci, compare, utterance_values


def test_bootstrap_ci_of_a_mean_matches_the_normal_theory_interval():
    rng = np.random.default_rng(1)
    x = rng.normal(10.0, 2.0, 400)
    ci = bootstrap_ci(x, n_boot=4000, seed=3)
    half = 1.96 * x.std(ddof=1) / math.sqrt(len(x))
    assert ci["value"] == pytest.approx(x.mean())
    assert ci["low"] == pytest.approx(x.mean() - half, abs=0.12 * half)
    assert ci["high"] == pytest.approx(x.mean() + half, abs=0.12 * half)
    assert bootstrap_ci(x, n_boot=4000, seed=3) == ci          # seeded: reproducible


def test_bootstrap_ci_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    hits = 0
    trials = 300
    for t in range(trials):
        x = rng.exponential(1.0, 80)                          # skewed, true mean 1
        ci = bootstrap_ci(x, n_boot=500, seed=t)
        hits += ci["low"] <= 1.0 <= ci["high"]
    assert 0.88 <= hits / trials <= 0.99


def test_wer_interval_is_a_ratio_of_sums_and_known_for_binomial_errors():
    # 500 utterances of 10 words; each word wrong with p = 0.2: WER ~ 0.2 +- 1.96*sqrt(.2*.8/5000)
    rng = np.random.default_rng(2)
    errors = rng.binomial(10, 0.2, 500)
    vals = {"wer_errors": errors, "ref_words": np.full(500, 10)}
    ci = bootstrap_ci(vals, "wer", n_boot=3000)
    half = 1.96 * math.sqrt(0.2 * 0.8 / 5000)
    assert ci["value"] == pytest.approx(errors.sum() / 5000)
    assert ci["high"] - ci["low"] == pytest.approx(2 * half, rel=0.15)
    with pytest.raises(ValueError, match="segments"):
        bootstrap_ci(vals, "segments")


def rows(errors_a, errors_b, words=10):
    out = []
    for name, errs in (("a", errors_a), ("b", errors_b)):
        n = len(errs)
        pu = {"wer_errors": list(errs), "ref_words": [words] * n, "clipped_words": [0] * n,
              "missed_words": [0] * n, "latency_ms": [None] * n, "seg_delay_ms": [None] * n,
              "boundary_hits": [0] * n, "missed_utterances": [0] * n, "unsegmented_utterances": [0] * n,
              "split_utterances": [0] * n}
        out.append({"config": name, "recording": "r", "wer": sum(errs) / (words * n),
                    "per_utterance": pu, "ok": True})
    return out


def test_paired_comparison_sees_a_small_consistent_difference():
    rng = np.random.default_rng(5)
    base = rng.binomial(10, 0.3, 200)
    # b makes exactly one more error on every fifth utterance: WER +0.02, consistently
    worse = base + (np.arange(200) % 5 == 0)
    cmp = compare(rows(base, worse), "a", "b", "wer")
    assert cmp["diff"] == pytest.approx(-0.02)
    assert cmp["significant"] and cmp["better"] == "a" and cmp["high"] < 0
    # the unpaired intervals of the two overlap: only the pairing shows the difference
    res = explore.Results(rows(base, worse))
    (ia, ib) = res.ci("wer")
    assert ia["high"] > ib["low"]
    # noise: b is a reshuffle of a's errors -> no significant difference
    noise = compare(rows(base, rng.permutation(base)), "a", "b", "wer")
    assert noise["diff"] == pytest.approx(0.0) and not noise["significant"] and noise["better"] is None


def test_best_says_whether_the_winner_beats_the_runner_up():
    rng = np.random.default_rng(9)
    base = rng.binomial(10, 0.3, 200)
    clear = explore.best(explore.Results(rows(base, base + 1)), minimise="wer")
    assert clear["config"] == "a" and clear["runner_up"] == "b" and clear["beats_runner_up"] is True
    _, hi = clear["difference_ci"]
    assert hi < 0
    tie = explore.best(explore.Results(rows(base, rng.permutation(base))), minimise="wer")
    assert tie["beats_runner_up"] is False


def test_utterance_values_add_up_to_the_row_metrics():
    ref = [(1000.0, 2000.0, "the cat sat"), (3000.0, 4000.0, "on mats")]
    segs = [Segment("i0", 900.0, 2300.0, 1000.0, 2000.0, "server_vad", t_closed=1.0, t_completed=1.05,
                    transcript="the cat sat"),
            Segment("i1", 3200.0, 3900.0, 3300.0, 3800.0, "server_vad", t_closed=2.0, t_completed=2.06,
                    transcript="on")]
    pu = utterance_values(ref, "the cat sat on mats", segs)
    row = explore.score(ref, "the cat sat on mats", segs)
    assert sum(pu["clipped_words"]) == row["clipped_words"]
    assert sum(pu["ref_words"]) == row["ref_words"] and sum(pu["wer_errors"]) == row["wer_errors"]
    assert [v for v in pu["latency_ms"] if v is not None] == row["latencies_ms"]
    assert sum(pu["boundary_hits"]) == row["boundary_hits"]


def test_wer_shares_add_up_to_the_recordings_errors():
    from spear_lab.explore.intervals import wer_shares
    from spear_lab.explore.metrics import wer_counts

    refs = ["the cat sat on the mat", "a dog barked loudly", "birds sing"]
    for hyp in ["the cat sat on the mat a dog barked loudly birds sing",
                "the cat sat on a mat dog dog barked loud birds sing sing", "", "cat",
                "extra the cat sat on the mat a dog barked loudly birds sing more words"]:
        errors, words = wer_shares(refs, hyp)
        assert words == [6, 4, 2]
        assert sum(errors) == wer_counts(" ".join(refs), hyp)["errors"], hyp
    # a merged segment's transcript is not charged to one utterance: perfect text, no errors
    assert wer_shares(refs, " ".join(refs)) == ([0, 0, 0], [6, 4, 2])
    assert wer_shares(refs, "the cat sat on a mat a dog barked loudly birds sing")[0] == [1, 0, 0]
