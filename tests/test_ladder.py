"""Scaling-ladder fits: recovery of known laws, honest leave-one-out, intervals, held-out runs, and the CLI."""

from __future__ import annotations

import json
import math
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from eval_folders import write_eval_output
from scipy.stats import t as student_t

from paloma.analysis.ladder.fit import (
    BOUNDS,
    LadderPoint,
    ScalingLaw,
    check_design,
    fit_ladder,
    fit_law,
    fit_target,
    fit_theta,
)
from paloma.analysis.runs import load_run
from paloma.errors import PalomaError

# Chinchilla's published fit (Hoffmann et al. 2022), in nats per token.
TRUE = ScalingLaw(E=1.69, A=406.4, alpha=0.34, B=410.7, beta=0.28)
SIZES = [20e6, 40e6, 80e6, 160e6, 320e6, 640e6]
RATIOS = [5, 20, 80]  # tokens per parameter
N = np.repeat(SIZES, len(RATIOS))
D = N * np.tile(RATIOS, len(SIZES))


def test_noise_free_ladder_recovers_every_parameter():
    law, _ = fit_law(N, D, TRUE(N, D))
    for name, value in TRUE.to_dict().items():
        assert getattr(law, name) == pytest.approx(value, rel=1e-4), name


def test_noisy_ladder_recovers_exponents_and_predicts_a_larger_model():
    # 0.2% multiplicative noise. Tolerances are the worst case over 30 seeds (E 5.5%, α 0.034, β 0.011,
    # prediction 0.83%) with some margin; A and B trade off against α and β and are not pinned down.
    rng = np.random.default_rng(11)
    law, _ = fit_law(N, D, TRUE(N, D) * np.exp(rng.normal(0.0, 0.002, len(N))))
    assert pytest.approx(TRUE.E, rel=0.08) == law.E
    assert law.alpha == pytest.approx(TRUE.alpha, abs=0.05)
    assert law.beta == pytest.approx(TRUE.beta, abs=0.03)
    target_n = 2.56e9
    assert law(target_n, 20 * target_n) == pytest.approx(TRUE(target_n, 20 * target_n), rel=0.015)


def test_leave_one_out_predicts_each_point_from_the_others_only():
    observed = TRUE(N, D)
    corrupted = 7
    observed[corrupted] *= 1.10  # one bad run
    points = [LadderPoint(f"m{i}", N[i], D[i], {"t": observed[i]}) for i in range(len(N))]
    fit = fit_target(points, "t")
    loo = fit["loo"]
    assert [p["name"] for p in loo] == [p.name for p in points]
    # Held out, the bad run is predicted by the 17 exact points: the true law, 10% below what it scored.
    assert loo[corrupted]["predicted"] == pytest.approx(TRUE(N[corrupted], D[corrupted]), rel=1e-4)
    assert loo[corrupted]["rel_error"] == pytest.approx(1 / 1.10 - 1, rel=1e-3)
    # Every entry equals an independent fit on the other points.
    for i in (0, corrupted, len(N) - 1):
        keep = np.arange(len(N)) != i
        refit, _ = fit_law(N[keep], D[keep], observed[keep])
        assert loo[i]["predicted"] == pytest.approx(float(refit(N[i], D[i])), rel=1e-4)
    assert fit["loo_max_abs_rel_error"] == pytest.approx(max(abs(p["rel_error"]) for p in loo))


def test_too_few_points_is_an_error():
    with pytest.raises(Exception, match="at least 5 points, got 4"):
        fit_law(N[:4], D[:4], TRUE(N[:4], D[:4]))


# ---- end to end: eval folders → paloma ladder fit -------------------------------------------------------------

DOMAIN_LAWS = {
    ("c4_en", "c4_en"): TRUE,
    ("m2d2_s2orc", "Art"): ScalingLaw(E=2.1, A=300.0, alpha=0.30, B=900.0, beta=0.31),
}


def _ladder_folders(tmp_path) -> list:
    """One eval folder per ladder model; every document's loss per token is its domain's law exactly."""
    folders = []
    for i, (n, d) in enumerate(zip(N, D, strict=True)):
        records = []
        for (source, domain), law in DOMAIN_LAWS.items():
            for j, tokens in enumerate((120, 300, 80)):
                nll = float(law(n, d)) * tokens
                records.append(
                    {
                        "id": f"{j}",
                        "source": source,
                        "domain": domain,
                        "tokens": tokens,
                        "bytes": 4 * tokens,
                        "nll_sum": nll,
                    }
                )
        model = {"name_or_path": f"ladder-{i}", "non_embedding_parameters": int(n), "parameters": int(n) + 10**7}
        if i % 2 == 0:  # half the runs record their training tokens, the others get them from a CSV
            model["training_tokens"] = int(d)
        folders.append(write_eval_output(tmp_path / f"run{i}", records, model=model))
    return folders


def test_cli_fits_domains_sources_and_suite_and_writes_json_csv_svg(tmp_path, paloma_cli):
    folders = _ladder_folders(tmp_path)
    tokens_csv = tmp_path / "tokens.csv"
    tokens_csv.write_text("run,training_tokens\n" + "".join(f"run{i},{int(D[i])}\n" for i in range(1, len(N), 2)))
    out = tmp_path / "fit"
    proc = paloma_cli(
        "ladder",
        "fit",
        *folders,
        "--tokens",
        tokens_csv,
        "--predict",
        "2.56e9",
        str(20 * 2.56e9),
        "--output",
        out,
        check=True,
    )
    assert "18 runs; L in nats per token" in proc.stdout
    ladder = json.loads((out / "fits.json").read_text())
    fits = {f["target"]: f for f in ladder["fits"]}
    assert list(fits) == ["suite", "source:c4_en", "source:m2d2_s2orc", "domain:c4_en/c4_en", "domain:m2d2_s2orc/Art"]
    art = fits["domain:m2d2_s2orc/Art"]
    for name, value in DOMAIN_LAWS[("m2d2_s2orc", "Art")].to_dict().items():
        assert art["law"][name] == pytest.approx(value, rel=1e-3), name
    assert art["prediction"]["loss"] == pytest.approx(
        float(DOMAIN_LAWS[("m2d2_s2orc", "Art")](2.56e9, 20 * 2.56e9)), rel=1e-4
    )
    assert art["loo_max_abs_rel_error"] < 1e-4
    csv_lines = (out / "fits.csv").read_text().splitlines()
    assert csv_lines[0].startswith("target,points,E,A,alpha,B,beta,")
    assert len(csv_lines) == 1 + len(fits)
    svg = ET.parse(out / "ladder.svg").getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(svg.findall(".//{http://www.w3.org/2000/svg}polyline")) == len(fits) * (len(RATIOS) + 1)


def test_cli_explains_missing_or_conflicting_training_tokens(tmp_path, paloma_cli):
    folders = _ladder_folders(tmp_path)
    missing = paloma_cli("ladder", "fit", *folders)
    assert missing.returncode == 2
    assert "run1: no training tokens (results.json model.training_tokens is missing" in missing.stderr
    conflicting = tmp_path / "tokens.csv"
    conflicting.write_text("run,training_tokens\nrun0,123\n")
    proc = paloma_cli("ladder", "fit", *folders, "--tokens", conflicting)
    assert proc.returncode == 2
    assert f"results.json says {int(D[0])} training tokens but the mapping says 123.0" in proc.stderr


def test_fitting_in_several_processes_gives_the_same_fits():
    rng = np.random.default_rng(5)
    points = [
        LadderPoint(f"m{i}", N[i], D[i], {t: float(TRUE(N[i], D[i])) * (1 + rng.normal(0, 0.002)) for t in ("x", "y")})
        for i in range(len(N))
    ]
    assert fit_ladder(points, jobs=2) == fit_ladder(points, jobs=1)


@pytest.mark.parametrize("kind", ["l2", "huber"])
def test_analytic_gradient_matches_finite_differences(kind):
    from scipy.optimize import approx_fprime

    from paloma.analysis.ladder.fit import objective

    rng = np.random.default_rng(3)
    log_n, log_d = np.log(N), np.log(D)
    log_l = np.log(TRUE(N, D)) + rng.normal(0, 0.01, len(N))  # residuals on both sides of the Huber kink
    theta = np.array([0.4, 6.2, 0.33, 5.9, 0.29])
    numeric = approx_fprime(theta, lambda t: objective(t, log_n, log_d, log_l, kind)[0], 1e-8)
    np.testing.assert_allclose(objective(theta, log_n, log_d, log_l, kind)[1], numeric, rtol=1e-4, atol=1e-10)


def test_the_default_objective_is_least_squares_on_log_residuals():
    """Issue 18: least squares predicts the big runs better than OLMo-ladder's Huber loss on noisy ladders
    (benchmarks/ladder_coverage.py). Checked independently: no step of θ lowers Σ (log L̂ − log L)²."""
    rng = np.random.default_rng(5)
    observed = TRUE(PAPER_N, PAPER_D) * np.exp(rng.normal(0.0, 0.01, len(PAPER_N)))
    theta, _ = fit_theta(PAPER_N, PAPER_D, observed)

    def squares(th):
        return float(np.sum((np.log(ScalingLaw.from_theta(th)(PAPER_N, PAPER_D)) - np.log(observed)) ** 2))

    best = squares(theta)
    for step in np.eye(5) * 1e-4:
        assert squares(theta + step) >= best and squares(theta - step) >= best
    huber, _ = fit_theta(PAPER_N, PAPER_D, observed, kind="huber")
    assert squares(huber) > best * 1.001  # a different estimator: Huber's fit is not the least-squares one
    assert fit_ladder(_points(TRUE), loo=False)["objective"] == "l2"


def test_huber_intervals_use_the_sandwich_covariance():
    """Independent computation: finite-difference Jacobian, H = Σ ψ̄′ g gᵀ with the kernel-smoothed ψ′,
    M = Σ ψ² g gᵀ · n/dof, covariance H⁻¹ M H⁻¹, prediction sd √(gᵀΣg + σ̂²)."""
    from scipy.stats import norm

    rng = np.random.default_rng(9)
    observed = TRUE(PAPER_N, PAPER_D) * np.exp(rng.normal(0.0, 0.01, len(PAPER_N)))
    points = [LadderPoint(f"m{i}", PAPER_N[i], PAPER_D[i], {"t": float(observed[i])}) for i in range(len(PAPER_N))]
    fit = fit_ladder(points, loo=False, predict=TARGETS["13B-5T"], kind="huber")["fits"][0]
    theta, _ = fit_theta(PAPER_N, PAPER_D, observed, kind="huber")

    def log_law(th, nn, dd):
        return np.log(ScalingLaw.from_theta(th)(nn, dd))

    eps = 1e-6
    jac = np.column_stack(
        [(log_law(theta + eps * e, PAPER_N, PAPER_D) - log_law(theta - eps * e, PAPER_N, PAPER_D)) / (2 * eps)
         for e in np.eye(5)]
    )  # fmt: skip
    grad = np.array(
        [(log_law(theta + eps * e, *TARGETS["13B-5T"]) - log_law(theta - eps * e, *TARGETS["13B-5T"])) / (2 * eps)
         for e in np.eye(5)]
    )  # fmt: skip
    r = log_law(theta, PAPER_N, PAPER_D) - np.log(observed)
    n, dof, delta = len(r), len(r) - 5, 1e-3
    s2 = r @ r / dof
    h = max(1.06 * math.sqrt(s2) * n**-0.2, delta)
    smoothed = norm.cdf((delta - r) / h) - norm.cdf((-delta - r) / h)
    bread = np.linalg.inv(jac.T @ np.diag(smoothed) @ jac)
    meat = jac.T @ np.diag(np.clip(r, -delta, delta) ** 2) @ jac * n / dof
    sd = math.sqrt(grad @ bread @ meat @ bread @ grad + s2)
    assert fit["prediction"]["sd_log"] == pytest.approx(sd, rel=1e-4)


# ---- the paper's ladder (OLMo ladder: 190M-1.3B at 20-200 tokens per parameter) -----------------------------

PAPER_N = np.repeat([190e6, 370e6, 760e6, 1.3e9], 4)
PAPER_D = PAPER_N * np.tile([20, 40, 100, 200], 4)
TARGETS = {"7B-4T": (6.887e9, 3.945e12), "13B-5T": (13.2e9, 5.0e12)}
KNOWN_LAWS = {
    "chinchilla": TRUE,
    "steep data term": ScalingLaw(E=2.3, A=2.0e3, alpha=0.45, B=9.0e4, beta=0.55),
    "flat model term": ScalingLaw(E=1.2, A=60.0, alpha=0.2, B=3.0e3, beta=0.35),
}


@pytest.mark.parametrize("name", list(KNOWN_LAWS))
def test_the_papers_ladder_predicts_7b_and_13b_within_half_a_percent(name):
    """The bug: started from the grid's best points only, Chinchilla's law fitted B = 1, β = 1.5 and missed
    7B-4T by +11%. Every term must be alive at the start for L-BFGS-B to find the optimum."""
    law = KNOWN_LAWS[name]
    fitted, _ = fit_law(PAPER_N, PAPER_D, law(PAPER_N, PAPER_D))
    for n, d in TARGETS.values():
        assert abs(fitted(n, d) / law(n, d) - 1) < 0.005
    assert np.max(np.abs(fitted(PAPER_N, PAPER_D) / law(PAPER_N, PAPER_D) - 1)) < 1e-4


def _random_law(rng: np.random.Generator) -> ScalingLaw:
    return ScalingLaw(
        E=rng.uniform(0.5, 3.0),
        A=math.exp(rng.uniform(2, 9)),
        alpha=rng.uniform(0.1, 0.7),
        B=math.exp(rng.uniform(2, 9)),
        beta=rng.uniform(0.1, 0.7),
    )


def test_no_noise_free_law_of_300_is_fitted_with_more_than_half_a_percent_in_sample_error():
    # 16 of 300 failed with the old starts. Costs about 50 ms of CPU a fit (15 s here on a busy 2-core
    # machine): the profile over exponents is one batched solve, the rest is 2-4 L-BFGS-B runs.
    rng = np.random.default_rng(2024)
    worst = 0.0
    started = time.process_time()
    for _ in range(300):
        law = _random_law(rng)
        observed = law(PAPER_N, PAPER_D)
        fitted, _ = fit_law(PAPER_N, PAPER_D, observed)
        worst = max(worst, float(np.max(np.abs(fitted(PAPER_N, PAPER_D) / observed - 1))))
    assert worst < 0.005, worst
    print(f"300 fits: {time.process_time() - started:.1f} CPU s; worst in-sample error {worst:.2e}")


def test_with_0_2_percent_noise_the_7b_prediction_is_within_a_percent_typically():
    # Measured over 200 seeds: median 0.57%, 90th percentile 1.3% (a fit started as OLMo-ladder does:
    # 0.56%, 1.25%; the old grid starts: 10.2%, 12.0%). Bounds with margin, over 40 seeds.
    rng = np.random.default_rng(7)
    n, d = TARGETS["7B-4T"]
    errors = []
    for _ in range(40):
        observed = TRUE(PAPER_N, PAPER_D) * np.exp(rng.normal(0.0, 0.002, len(PAPER_N)))
        fitted, _ = fit_law(PAPER_N, PAPER_D, observed)
        errors.append(abs(fitted(n, d) / TRUE(n, d) - 1))
    assert np.median(errors) < 0.01
    assert np.percentile(errors, 90) < 0.025


def _points(law: ScalingLaw, n=PAPER_N, d=PAPER_D, noise: np.ndarray | None = None) -> list[LadderPoint]:
    observed = law(n, d) * (np.exp(noise) if noise is not None else 1.0)
    return [LadderPoint(f"m{i}", n[i], d[i], {"t": float(observed[i])}) for i in range(len(n))]


def test_a_parameter_on_a_bound_is_named_in_a_warning():
    # No irreducible loss (as the demo's tiny models see it): E ends on its lower bound.
    no_floor = ScalingLaw(E=1e-9, A=300.0, alpha=0.3, B=500.0, beta=0.3)
    fit = fit_target(_points(no_floor), "t", loo=False)
    lowest = math.exp(BOUNDS[0][0])
    assert f"E = {lowest:.3g} is at its lower bound {lowest:.3g}: the runs do not determine it" in fit["warnings"]
    assert fit["at_bounds"] == {"E": "lower"}
    clean = fit_target(_points(TRUE), "t", loo=False)
    assert clean["warnings"] == [] and clean["at_bounds"] == {}


def test_a_term_too_small_to_fit_is_named_in_a_warning():
    # No data term at all: B/D^β has no gradient, so B and β stay wherever they started.
    flat = ScalingLaw(E=1.8, A=300.0, alpha=0.3, B=math.exp(BOUNDS[3][0]), beta=0.3)
    fit = fit_target(_points(flat), "t", loo=False)
    assert any(w.startswith("the B/D^β term is below 1e-06 of L") for w in fit["warnings"]), fit["warnings"]


@pytest.mark.parametrize(
    ("n", "d", "message"),
    [
        ([1e8] * 5, [2e9] * 5, "1 distinct (N, D) runs"),  # the same run five times
        ([1e8, 2e8, 4e8] * 2, [2e9] * 3 + [4e9] * 3, "2 distinct token counts D"),  # 3 sizes × 2 budgets
        ([1e8, 2e8] * 3, [2e9, 2e9, 4e9, 4e9, 8e9, 8e9], "2 distinct model sizes N"),
    ],
)
def test_degenerate_designs_are_refused(n, d, message):
    with pytest.raises(PalomaError, match=re_escape(message)):
        check_design(n, d)
    points = [LadderPoint(f"m{i}", n[i], d[i], {"t": 3.0 + 0.01 * i}) for i in range(len(n))]
    with pytest.raises(PalomaError, match=re_escape(message)):
        fit_ladder(points)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def _numeric_interval(n, d, observed, target, level=0.95) -> tuple[float, float]:
    """Independent delta method: finite-difference Jacobian of log L, σ̂² (JᵀJ)⁻¹, t quantile, + σ̂²."""
    theta, _ = fit_theta(n, d, observed)

    def log_law(th, nn, dd):
        return np.log(ScalingLaw.from_theta(th)(nn, dd))

    eps = 1e-6
    jac = np.column_stack(
        [(log_law(theta + eps * e, n, d) - log_law(theta - eps * e, n, d)) / (2 * eps) for e in np.eye(5)]
    )
    grad = np.array(
        [(log_law(theta + eps * e, *target) - log_law(theta - eps * e, *target)) / (2 * eps) for e in np.eye(5)]
    )
    residual = log_law(theta, n, d) - np.log(observed)
    s2 = residual @ residual / (len(n) - 5)
    sd = math.sqrt(s2 * grad @ np.linalg.inv(jac.T @ jac) @ grad + s2)
    half = student_t.ppf(0.5 + level / 2, len(n) - 5) * sd
    centre = ScalingLaw.from_theta(theta)(*target)
    return centre * math.exp(-half), centre * math.exp(half)


def test_prediction_interval_is_the_delta_method_of_log_least_squares():
    noise = np.random.default_rng(3).normal(0.0, 0.003, len(PAPER_N))
    points = _points(TRUE, noise=noise)
    ladder = fit_ladder(points, loo=False, predict=TARGETS["7B-4T"])
    lo, hi = ladder["fits"][0]["prediction"]["interval"]
    expected = _numeric_interval(PAPER_N, PAPER_D, np.array([p.losses["t"] for p in points]), TARGETS["7B-4T"])
    assert lo == pytest.approx(expected[0], rel=1e-5) and hi == pytest.approx(expected[1], rel=1e-5)


def test_a_floor_on_its_bound_keeps_its_uncertainty_in_the_interval():
    """With 2% noise a third of the paper's ladders fit E on its lower bound (no irreducible loss); held fixed
    there, 95% intervals held the 7B-4T run in 85% of draws. Independently: the delta method with E in linear
    units, d log L / dE = 1/L, by finite differences."""
    rng = np.random.default_rng(1)
    for _ in range(20):
        observed = TRUE(PAPER_N, PAPER_D) * np.exp(rng.normal(0.0, 0.02, len(PAPER_N)))
        theta, _ = fit_theta(PAPER_N, PAPER_D, observed)
        if math.exp(theta[0]) < 2 * math.exp(BOUNDS[0][0]):
            break
    else:
        pytest.fail("no ladder with E on its bound in 20 draws")
    points = [LadderPoint(f"m{i}", PAPER_N[i], PAPER_D[i], {"t": float(observed[i])}) for i in range(len(PAPER_N))]
    fit = fit_ladder(points, loo=False, predict=TARGETS["7B-4T"])["fits"][0]
    assert fit["at_bounds"] == {"E": "lower"}

    def log_law(phi, nn, dd):  # φ = (E, a, α, b, β)
        return np.log(phi[0] + np.exp(phi[1]) * nn ** -phi[2] + np.exp(phi[3]) * dd ** -phi[4])

    phi = np.array([math.exp(theta[0]), *theta[1:]])
    steps = np.eye(5) * np.array([1e-7, 1e-6, 1e-7, 1e-6, 1e-7])[:, None]

    def gradient(nn, dd):
        return np.stack([(log_law(phi + h, nn, dd) - log_law(phi - h, nn, dd)) / (2 * h.sum()) for h in steps], -1)

    jac, grad = gradient(PAPER_N, PAPER_D), gradient(*TARGETS["7B-4T"])
    residual = log_law(phi, PAPER_N, PAPER_D) - np.log(observed)
    s2 = residual @ residual / (len(residual) - 5)
    sd = math.sqrt(s2 * grad @ np.linalg.inv(jac.T @ jac) @ grad + s2)
    assert fit["prediction"]["sd_log"] == pytest.approx(sd, rel=1e-4)
    assert fit["dof"] == len(PAPER_N) - 5


def test_prediction_intervals_cover_held_out_runs_at_about_their_level():
    # At 0.5-2% noise 95-97% of 95% prediction intervals hold the 7B and 13B runs (benchmarks/ladder_coverage.py).
    rng = np.random.default_rng(11)
    n, d = TARGETS["7B-4T"]
    inside = 0
    for _ in range(60):
        points = _points(TRUE, noise=rng.normal(0.0, 0.002, len(PAPER_N)))
        held = LadderPoint("7B", n, d, {"t": float(TRUE(n, d)) * math.exp(rng.normal(0.0, 0.002))})
        row = fit_ladder(points, loo=False, holdout=[held])["fits"][0]["holdout"][0]
        inside += row["inside"]
    assert inside / 60 >= 0.88


def test_held_out_errors_are_signed_prediction_minus_actual():
    points = _points(TRUE)
    n, d = TARGETS["13B-5T"]
    actual = float(TRUE(n, d)) * 1.02  # the big run came out 2% worse than the law
    ladder = fit_ladder(points, loo=False, holdout=[LadderPoint("13B", n, d, {"t": actual})])
    row = ladder["fits"][0]["holdout"][0]
    assert row["predicted"] == pytest.approx(float(TRUE(n, d)), rel=1e-6)
    assert row["rel_error"] == pytest.approx(1 / 1.02 - 1, rel=1e-4)
    assert row["abs_error"] == pytest.approx(float(TRUE(n, d)) - actual, rel=1e-4)
    assert row["inside"] is False  # noise-free ladder: a 2% miss is far outside a near-zero-width interval
    assert ladder["holdout_summary"] == [
        {
            "level": "t",
            "predictions": 1,
            "mean_rel_error": row["rel_error"],
            "mean_abs_rel_error": abs(row["rel_error"]),
            "inside_interval": 0.0,
        }
    ]


# ---- from eval runs: checkpoints, schedules, N, the registry ---------------------------------------------------


def _checkpoint_run(tmp_path, name, n, d, loss, training=None, code_loss=None, **model):
    """An eval output of one checkpoint: c4_en scores `loss`; with `code_loss`, a code domain too."""
    records = [{"id": "0", "source": "c4_en", "domain": "c4_en", "tokens": 500, "bytes": 2000, "nll_sum": 500 * loss}]
    if code_loss is not None:
        records.append(
            {"id": "1", "source": "stack", "domain": "python", "tokens": 500, "bytes": 2000, "nll_sum": 500 * code_loss}
        )
    model = {"name_or_path": name, "non_embedding_parameters": n, "training_tokens": d, **model}
    if training is not None:
        model["training"] = training
    return load_run(write_eval_output(tmp_path / name, records, model=model))


def test_the_last_k_checkpoints_of_a_run_are_averaged(tmp_path):
    from paloma.analysis.ladder.data import ladder_points

    runs = []
    for i, (n, d) in enumerate(zip(PAPER_N, PAPER_D, strict=True)):
        for j, step in enumerate((0.8, 0.9, 1.0)):  # three checkpoints of each run, the last one final
            training = {"config_fingerprint": f"run{i}", "schedule_fraction": step}
            runs.append(_checkpoint_run(tmp_path, f"r{i}-c{j}", n, d * step, 3.0 + 0.1 * i + 0.01 * j, training))
    points, _ = ladder_points(runs, levels=("suite",), last_k=2)
    assert len(points) == len(PAPER_N)
    first = points[0]
    assert first.name == "r0-c2" and first.checkpoints == 2 and first.schedule_fraction == 1.0
    assert first.d == pytest.approx(PAPER_D[0] * (0.9 + 1.0) / 2)
    assert first.losses["suite"] == pytest.approx((3.01 + 3.02) / 2)
    final_only, _ = ladder_points(runs, levels=("suite",))
    assert final_only[0].losses["suite"] == pytest.approx(3.02) and final_only[0].d == pytest.approx(PAPER_D[0])


def test_runs_at_different_fractions_of_their_schedule_are_refused(tmp_path):
    from paloma.analysis.ladder.data import ladder_points

    runs = [
        _checkpoint_run(tmp_path, f"r{i}", n, d, 3.0, {"config_fingerprint": f"f{i}", "schedule_fraction": 1.0})
        for i, (n, d) in enumerate(zip(PAPER_N, PAPER_D, strict=True))
    ]
    runs.append(
        _checkpoint_run(tmp_path, "half", 2e9, 4e10, 3.0, {"config_fingerprint": "h", "schedule_fraction": 0.5})
    )
    with pytest.raises(PalomaError, match=r"different fractions of their LR schedule \(.*half: 0.5\)"):
        ladder_points(runs, levels=("suite",))
    assert len(ladder_points(runs, levels=("suite",), mixed_schedules=True)[0]) == len(runs)


def test_n_can_count_the_output_embedding_as_olmo_ladder_does(tmp_path):
    from paloma.analysis.ladder.data import parameter_count

    run = _checkpoint_run(tmp_path, "r", 1.0e8, 2e9, 3.0, output_embedding_parameters=2.5e7)
    assert parameter_count(run, "non_embedding") == 1.0e8
    assert parameter_count(run, "non_embedding", count_output_embedding=True) == 1.25e8
    old = _checkpoint_run(tmp_path, "old", 1.0e8, 2e9, 3.0)
    with pytest.raises(PalomaError, match=r"model\.output_embedding_parameters is missing"):
        parameter_count(old, "non_embedding", count_output_embedding=True)


def test_the_evaluator_records_the_output_embedding_it_would_count(tiny):
    from transformers import AutoModelForCausalLM

    from paloma.eval.model import output_embedding_parameters

    untied = AutoModelForCausalLM.from_pretrained(tiny["models"]["gpt_neox"])  # tie_word_embeddings=False
    assert output_embedding_parameters(untied) == untied.get_output_embeddings().weight.numel()
    untied.config.tie_word_embeddings = True
    untied.tie_weights()
    assert output_embedding_parameters(untied) == 0


def test_the_suite_target_leaves_out_what_the_registry_calls_code(tmp_path, paloma_cli):
    registry = {
        "release": "mini",
        "sources": [
            {"name": "c4_en", "group": "standard", "domains": ["c4_en"]},
            {"name": "stack", "group": "standard", "domains": ["python"], "code_domains": ["python"]},
        ],
    }
    (tmp_path / "mini.json").write_text(json.dumps(registry))
    folders = []
    for i, (n, d) in enumerate(zip(PAPER_N, PAPER_D, strict=True)):
        run = _checkpoint_run(tmp_path, f"r{i}", n, d, float(TRUE(n, d)), code_loss=1.0)
        folders.append(run.path)
    common = ("ladder", "fit", *folders, "--levels", "suite", "--no-loo", "--output")
    paloma_cli(*common, tmp_path / "a", "--registry", "none", check=True)
    paloma_cli(*common, tmp_path / "b", "--registry", tmp_path / "mini.json", check=True)
    suite = json.loads((tmp_path / "b" / "fits.json").read_text())["fits"][0]
    assert suite["observed"] == pytest.approx(list(TRUE(PAPER_N, PAPER_D)), rel=1e-12)  # the code domain is out
    mixed = json.loads((tmp_path / "a" / "fits.json").read_text())["fits"][0]
    assert mixed["observed"] == pytest.approx(list((TRUE(PAPER_N, PAPER_D) + 1.0) / 2), rel=1e-12)
