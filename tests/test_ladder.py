"""Scaling-ladder fits: recovery of known laws, honest leave-one-out, and the `paloma ladder fit` CLI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from eval_folders import write_eval_output

from paloma.analysis.ladder import LadderPoint, ScalingLaw, fit_ladder, fit_law, fit_target

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


def test_analytic_gradient_matches_finite_differences():
    from scipy.optimize import approx_fprime

    from paloma.analysis.ladder import objective

    rng = np.random.default_rng(3)
    log_n, log_d = np.log(N), np.log(D)
    log_l = np.log(TRUE(N, D)) + rng.normal(0, 0.01, len(N))  # residuals on both sides of the Huber kink
    theta = np.array([0.4, 6.2, 0.33, 5.9, 0.29])
    numeric = approx_fprime(theta, lambda t: objective(t, log_n, log_d, log_l)[0], 1e-8)
    np.testing.assert_allclose(objective(theta, log_n, log_d, log_l)[1], numeric, rtol=1e-4, atol=1e-10)
