"""Ladder charts: readable (y range from the data, legend inside), escaped, and drawn without an import cycle."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import REPO_ROOT, paloma_env

from paloma.analysis.ladder import ScalingLaw
from paloma.analysis.ladder.chart import MARGIN, PANEL_H, ladder_panels, ladder_svg, y_range

LAW = {"E": 1.7, "A": 400.0, "alpha": 0.34, "B": 410.0, "beta": 0.28}
SVG = "{http://www.w3.org/2000/svg}"


def ladder(name: str = "d64-s100", parameters: str = "non_embedding", unit: str = "nats per token") -> dict:
    """A ladder of five runs at two D/N ratios, fitted exactly, predicting a model 50x larger than the ladder."""
    points = [{"name": f"{name}-{i}", "n": n, "d": n * r} for i, (n, r) in enumerate(
        ((1e6, 20), (3e6, 20), (1e7, 20), (1e6, 80), (3e6, 80)))]  # fmt: skip
    law = ScalingLaw(**LAW)
    observed = [float(law(p["n"], p["d"])) for p in points]
    predict = {"n": 5e8, "d": 1e10}
    prediction = {**predict, "loss": float(law(predict["n"], predict["d"]))}
    fit = {"target": "suite", "law": LAW, "observed": observed, "loo_mean_abs_rel_error": 0.012,
           "prediction": prediction, "added_by_later_fit": [1, 2]}  # fmt: skip
    return {"parameters": parameters, "unit": unit, "points": points, "predict": predict, "fits": [fit]}


def test_y_range_comes_from_the_data_not_the_extrapolated_curve():
    data = ladder()
    fit = data["fits"][0]
    lo, hi = y_range(fit)
    values = [*fit["observed"], fit["prediction"]["loss"]]
    span = max(values) - min(values)
    assert lo == pytest.approx(min(values) - 0.12 * span) and hi == pytest.approx(max(values) + 0.12 * span)
    law = ScalingLaw(**LAW)
    assert float(law(1e5, 2e6)) > hi  # the curve leaves the range at the small end: it is clipped, not followed
    (panel,) = ladder_panels(data)
    root = ET.fromstring(panel)
    for line in root.iter(f"{SVG}polyline"):
        ys = [float(xy.split(",")[1]) for xy in line.get("points").split()]
        assert all(MARGIN["top"] - 0.05 <= y <= PANEL_H - MARGIN["bottom"] + 0.05 for y in ys)
    dots = [float(c.get("cy")) for c in root.iter(f"{SVG}circle")]
    assert max(dots) - min(dots) > 0.5 * (PANEL_H - MARGIN["top"] - MARGIN["bottom"])  # the points use the panel


def test_legend_is_inside_the_drawing():
    svg = ladder_svg({**ladder(), "fits": ladder()["fits"] * 4})
    root = ET.fromstring(svg)
    width, height = (float(v) for v in root.get("viewBox").split()[2:])
    legend = [t for t in root.iter(f"{SVG}text") if t.text and ("D/N" in t.text or "prediction" in t.text)]
    assert len(legend) == 3
    for text in legend:
        x, y = float(text.get("x")), float(text.get("y"))
        assert x >= 0 and x + 6.5 * len(text.text) <= width and 0 < y <= height


def test_labels_from_submissions_are_escaped():
    evil = '</text></svg><img src=x onerror="alert(1)">'
    svg = ladder_svg(ladder(name=evil, unit=evil, parameters=evil))
    assert "<img" not in svg and "</svg><" not in svg.replace("</svg>", "", svg.count("</svg>") - 1)
    root = ET.fromstring(svg)  # still one well-formed document
    assert any(evil in (t.text or "") for t in root.iter(f"{SVG}title"))
    assert not [a for e in root.iter() for a in e.attrib if a.lower().startswith("on")]


def test_site_panels_scale_with_their_box():
    for panel in ladder_panels(ladder()):
        root = ET.fromstring(panel)
        assert root.get("viewBox") and root.get("width") is None  # responsive: the grid cell sets the width
        assert "<style" not in panel  # presentation attributes only, allowed by the site's CSP


def test_the_analysis_never_imports_the_site():
    for path in (REPO_ROOT / "paloma" / "analysis").rglob("*.py"):
        assert not re.search(r"^\s*(from|import) paloma\.site", path.read_text(), re.M), path
    code = (
        "import sys, paloma.analysis.ladder.extension, paloma.analysis.ladder.chart; "
        "print(sorted(m for m in sys.modules if m.startswith('paloma.site')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=paloma_env(), check=True)
    assert proc.stdout.strip() == "[]"


def test_the_site_draws_a_carried_ladder(tmp_path):
    from leaderboard_factory import eval_output, metadata, write_tiny_registry

    from paloma.site.builder import build
    from paloma.submissions.submit import submit

    registry_file = write_tiny_registry(tmp_path)
    out = eval_output(tmp_path / "eval", registry_file, model="m")
    submit(out, metadata("m", extra={"ladder": ladder()}), tmp_path / "subs", registry_file)
    build(tmp_path / "subs", tmp_path / "site", registry_file=registry_file, progress=False)
    html = (tmp_path / "site" / "models" / "m.html").read_text()
    assert html.count('<figure class="ladder-panel"><svg') == 1 and "D/N = 20" in html and "D/N = 80" in html
    assert 'width="900"' not in html and not Path(tmp_path / "site" / "ladder.svg").exists()
