"""The static site: numbers recomputed from sums, Pareto frontiers, escaping, release labels, offline assets."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from conftest import run_paloma
from leaderboard_factory import eval_output, metadata, write_decon_report, write_tiny_manifest, write_tiny_registry

from paloma.errors import PalomaError
from paloma.registry import load_registry_file
from paloma.site import extras
from paloma.site.builder import SiteWriter, build
from paloma.site.entries import assign_ranks, make_entry, purpose_groups
from paloma.site.pareto import pareto_frontier
from paloma.submissions.submit import submit
from paloma.submissions.validate import validate

MODELS = {  # name: (quality, fixed vocabulary, parameters, training tokens)
    "small": (1.2, True, 100_000_000, 4_000_000_000),
    "medium": (1.0, True, 300_000_000, 2_000_000_000),
    "large": (0.8, True, 900_000_000, 6_000_000_000),
    "other-vocab": (0.9, False, 500_000_000, 1_000_000_000),
}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict:
    """A release with four models, built once for the tests of this module."""
    root = tmp_path_factory.mktemp("site")
    registry_file = write_tiny_registry(root)
    for name, (quality, fixed, params, tokens) in MODELS.items():
        out = eval_output(
            root / f"eval-{name}",
            registry_file,
            model=name,
            quality=quality,
            fixed_vocabulary=fixed,
            parameters=params,
            non_embedding_parameters=params // 2,
            with_ci=name == "medium",
        )
        submit(out, metadata(name, fixed_vocabulary=fixed, training_tokens=tokens), root / "subs", registry_file)
    summary = build(root / "subs", root / "out", registry_file=registry_file, progress=False)
    return {"root": root, "registry_file": registry_file, "out": root / "out", "summary": summary}


def independent_macros(submission: dict, sources: list[str]) -> dict:
    """Source macro = mean over its domains; suite = mean over sources. Written out, not via paloma.metrics."""
    per_source = {}
    for source in sources:
        domains = submission["results"][source].values()
        bpb = [d["nll_sum"] / (d["bytes"] * math.log(2)) for d in domains]
        ppl = [math.exp(d["nll_sum"] / d["tokens"]) for d in domains]
        per_source[source] = {"bpb": sum(bpb) / len(bpb), "ppl": sum(ppl) / len(ppl)}
    return {
        "sources": per_source,
        "suite": {m: sum(v[m] for v in per_source.values()) / len(per_source) for m in ("bpb", "ppl")},
    }


def test_site_aggregates_equal_those_recomputed_from_sums(site):
    data = json.loads((site["out"] / "data" / "leaderboard.json").read_text())
    registry = load_registry_file(site["registry_file"])
    public = [s.name for s in registry.public()]
    assert [s["name"] for s in data["sources"]] == public == ["alpha", "beta", "gamma", "delta"]
    standard = [s.name for s in registry.public() if s.group == "standard"]
    for row in data["rows"]:
        sub = json.loads((site["root"] / "subs" / row["name"] / "submission.json").read_text())
        expected = independent_macros(sub, public)
        for i, source in enumerate(public):
            assert row["bpb"][i] == pytest.approx(expected["sources"][source]["bpb"], rel=1e-5)
            assert row["ppl"][i] == pytest.approx(expected["sources"][source]["ppl"], rel=1e-5)
        assert row["suite"]["all"]["bpb"] == pytest.approx(expected["suite"]["bpb"], rel=1e-5)
        assert row["suite"]["standard"]["bpb"] == pytest.approx(
            independent_macros(sub, standard)["suite"]["bpb"], rel=1e-5
        )
    csv_rows = (site["out"] / "data" / "leaderboard.csv").read_text().splitlines()
    header = csv_rows[0].split(",")
    for line in csv_rows[1:]:
        values = dict(zip(header, line.split(","), strict=True))
        sub = json.loads((site["root"] / "subs" / values["name"] / "submission.json").read_text())
        full_precision = independent_macros(sub, public)["suite"]["bpb"]
        assert float(values["suite_all_macro_bpb"]) == pytest.approx(full_precision, rel=1e-12)


def test_pages_show_the_recomputed_numbers(site):
    sub = json.loads((site["root"] / "subs" / "medium" / "submission.json").read_text())
    html = (site["out"] / "models" / "medium.html").read_text()
    expected = independent_macros(sub, ["alpha", "beta", "gamma", "delta"])
    assert f">{expected['suite']['bpb']:.4f}<" in html
    assert f"{expected['sources']['alpha']['ppl']:.2f}" in html
    assert "<title>Medium · tiny leaderboard (not Paloma)</title>" in html


def test_confidence_intervals_are_shown_where_the_submission_has_them(site):
    results = json.loads((site["root"] / "eval-medium" / "results.json").read_text())
    lo, hi = results["sources"]["alpha"]["domains"]["a2"]["ci"]["bpb"]
    assert lo < results["sources"]["alpha"]["domains"]["a2"]["bpb"] < hi
    html = (site["out"] / "models" / "medium.html").read_text()
    assert "<td>a2</td>" in html and f"{lo:.4f}–{hi:.4f}" in html and "95% CI" in html
    assert "95% CI" not in (site["out"] / "models" / "small.html").read_text()


def test_ranks_follow_fit_and_perplexity_ranks_only_fixed_vocabularies(site):
    summary = site["summary"]
    assert summary.submissions == 4 and summary.release == "tiny" and summary.split == "val"
    registry = load_registry_file(site["registry_file"])
    loaded = validate([site["root"] / "subs"], site["registry_file"]).submissions
    entries = [make_entry(x.submission, x.path, registry) for x in loaded]
    assign_ranks(entries, list(purpose_groups(registry)))
    by_fit = sorted(entries, key=lambda e: e.fit("bpb"))
    assert [e.ranks["all/bpb"] for e in by_fit] == [1, 2, 3, 4]
    assert "all/ppl" not in next(e for e in entries if e.name == "other-vocab").ranks


@pytest.mark.parametrize(
    ("points", "frontier"),
    [
        ([(1, 5)], [0]),  # a single point is its own frontier
        ([], []),
        ([(1, 5), (2, 3), (3, 4), (4, 1)], [0, 1, 3]),  # (3, 4) is dominated by (2, 3)
        ([(1, 5), (1, 5), (2, 3)], [0, 1, 2]),  # exact ties: neither dominates the other
        ([(1, 5), (1, 4)], [1]),  # same cost, better fit dominates
        ([(1, 4), (2, 4)], [0]),  # same fit, lower cost dominates
        ([(3, 1), (2, 2), (1, 3)], [2, 1, 0]),  # all on the frontier, ordered by cost
        ([(1, float("nan")), (2, 2)], [1]),  # points without a value are left out
    ],
)
def test_pareto_frontier_hand_made_cases(points, frontier):
    assert pareto_frontier(points) == frontier


def test_pareto_page_marks_the_frontier(site):
    html = (site["out"] / "pareto.html").read_text()
    first_view = html.split('data-view="all"')[1].split('data-view="guidelines"')[0]
    against_parameters = first_view.split("<h2>Against parameters</h2>")[1].split("<h2>")[0]
    caption = against_parameters.split('class="table-wrap frontier-table"')[1]
    fits = {}
    for name in MODELS:
        sub = json.loads((site["root"] / "subs" / name / "submission.json").read_text())
        fits[name] = independent_macros(sub, ["alpha", "beta", "gamma", "delta"])["suite"]["bpb"]
    points = [(MODELS[n][2], fits[n]) for n in MODELS]
    expected = {list(MODELS)[i] for i in pareto_frontier(points)}
    shown = set(re.findall(r'href="models/([a-z-]+)\.html"', caption))
    assert shown == expected
    assert against_parameters.count('class="dot front"') == len(expected)
    assert against_parameters.count('class="dot"') == len(MODELS) - len(expected)


def test_best_model_per_domain_is_marked_on_source_pages(site):
    html = (site["out"] / "sources" / "alpha.html").read_text()
    bpb_panel = html.split('id="panel-bpb"')[1].split('id="panel-ppl"')[0]
    subs = {n: json.loads((site["root"] / "subs" / n / "submission.json").read_text()) for n in MODELS}
    for domain in ("a1", "a2", "a3"):
        bpb = {
            n: s["results"]["alpha"][domain]["nll_sum"] / s["results"]["alpha"][domain]["bytes"]
            for n, s in subs.items()
        }
        best = min(bpb, key=bpb.get)
        row = bpb_panel.split(f"<tr><td>{domain}</td>")[1].split("</tr>")[0]
        assert row.count('class="num best"') == 1
        assert f'href="../models/{best}.html"' in row.split("</td>")[-2]
    ppl_panel = html.split('id="panel-ppl"')[1]
    assert "Other Vocab" not in ppl_panel  # perplexity is compared among fixed vocabularies only


def test_markup_in_submission_fields_renders_as_text(tmp_path):
    registry_file = write_tiny_registry(tmp_path)
    evil = "<script>window.pwned=1</script><img src=x onerror=alert(1)>"
    out = eval_output(tmp_path / "eval", registry_file, model="evil")
    meta = metadata(
        "evil",
        description=evil,
        training_data=evil,
        tokenizer=evil,
        model_id=evil,
        links=[{"label": "paper", "url": "https://example.org/?q=<b>&x=\"'"}],
        extra={"notes": evil},
    )
    with pytest.raises(PalomaError, match="not an http"):
        submit(out, meta, tmp_path / "subs", registry_file)
    meta["links"] = [{"label": "paper", "url": "https://example.org/a"}]
    submit(out, meta, tmp_path / "subs", registry_file)
    build(tmp_path / "subs", tmp_path / "site", registry_file=registry_file, progress=False)
    for page in (tmp_path / "site").rglob("*.html"):
        html = page.read_text()
        assert "<script>window.pwned" not in html and "<img src=x" not in html, page
    model_page = (tmp_path / "site" / "models" / "evil.html").read_text()
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in model_page
    data_js = (tmp_path / "site" / "data" / "leaderboard.json").read_text()
    assert "<" not in data_js  # embedded JSON cannot close its <script> element


def test_markup_in_names_renders_as_text_even_past_validation(tmp_path):
    """Validation refuses markup in names; the templates escape it anyway (a second lock)."""
    registry_file = write_tiny_registry(tmp_path)
    out = eval_output(tmp_path / "eval", registry_file, model="plain")
    path = submit(out, metadata("plain"), tmp_path / "subs", registry_file)
    registry = load_registry_file(registry_file)
    (loaded,) = validate([tmp_path / "subs"], registry_file).submissions
    evil = '"><script>window.pwned=1</script>'
    sub = loaded.submission
    sub = sub.model_copy(update={"model": sub.model.model_copy(update={"display_name": evil, "organisation": evil})})
    entry = make_entry(sub, path, registry)
    assign_ranks([entry], list(purpose_groups(registry)))
    (tmp_path / "site").mkdir()
    SiteWriter(tmp_path / "site", [entry], registry, "tiny", "val", progress=False).write_all()
    for page in (tmp_path / "site").rglob("*.html"):
        assert "<script>window.pwned" not in page.read_text(), page
    assert (
        "&#34;&gt;&lt;script&gt;window.pwned=1&lt;/script&gt;"
        in (tmp_path / "site" / "models" / "plain.html").read_text()
    )


def test_extension_hook_renders_registered_extra_data(tmp_path):
    registry_file = write_tiny_registry(tmp_path)
    out = eval_output(tmp_path / "eval", registry_file, model="ladder")
    meta = metadata("ladder", extra={"ladder_fit": {"E": 1.7, "A": 400.0}, "unknown_thing": [1, "<b>"]})
    submit(out, meta, tmp_path / "subs", registry_file)

    def render(value, submission, env):
        return env.from_string("<p class='ladder'>E = {{ v.E }}, A = {{ v.A }}</p>").render(v=value)

    extras.register_extension("ladder_fit", "Scaling-ladder fit", render)
    try:
        build(tmp_path / "subs", tmp_path / "site", registry_file=registry_file, progress=False)
    finally:
        extras._EXTENSIONS.pop("ladder_fit")
    html = (tmp_path / "site" / "models" / "ladder.html").read_text()
    assert "<h2>Scaling-ladder fit</h2>" in html and "<p class='ladder'>E = 1.7, A = 400.0</p>" in html
    assert "<h2>unknown_thing</h2>" in html and "&#34;&lt;b&gt;&#34;" in html


def test_demo_release_is_labelled_and_never_mixed(tmp_path):
    paloma_like = write_tiny_registry(tmp_path, release="tiny")
    demo = write_tiny_registry(tmp_path, release="tiny-demo")
    both = [paloma_like, demo]
    for release_file, name in ((paloma_like, "real-model"), (demo, "demo-model")):
        out = eval_output(tmp_path / f"eval-{name}", release_file, model=name)
        submit(out, metadata(name), tmp_path / "subs" / name.split("-")[0], release_file)
    with pytest.raises(PalomaError, match="several releases"):
        build(tmp_path / "subs", tmp_path / "site", registry_file=both, progress=False)
    build(tmp_path / "subs", tmp_path / "site", release="tiny-demo", registry_file=both, progress=False)
    html = (tmp_path / "site" / "index.html").read_text()
    assert "this is not the Paloma leaderboard" in html
    assert "<title>Leaderboard · tiny-demo leaderboard (not Paloma)</title>" in html
    assert "demo-model" in html and "real-model" not in html


def test_invalid_submissions_build_nothing_and_keep_the_old_site(site, tmp_path):
    registry_file = write_tiny_registry(tmp_path)
    out = eval_output(tmp_path / "eval", registry_file, model="model-a")
    path = submit(out, metadata("model-a"), tmp_path / "subs", registry_file)
    build(tmp_path / "subs", tmp_path / "site", registry_file=registry_file, progress=False)
    before = (tmp_path / "site" / "index.html").read_text()
    data = json.loads(path.read_text())
    data["aggregates"]["suite"]["macro_bpb"] = 0.1
    path.write_text(json.dumps(data))
    with pytest.raises(PalomaError, match="invalid submissions, nothing built"):
        build(tmp_path / "subs", tmp_path / "site", registry_file=registry_file, progress=False)
    assert (tmp_path / "site" / "index.html").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".site")) == []


def test_site_is_self_contained(site):
    """No page loads anything from the network: scripts, styles and images are all relative paths."""
    for page in site["out"].rglob("*.html"):
        html = page.read_text()
        for tag, attr in (("script", "src"), ("link", "href"), ("img", "src")):
            for url in re.findall(rf"<{tag}\b[^>]*\b{attr}=\"([^\"]*)\"", html):
                assert not re.match(r"^(https?:)?//", url), f"{page}: {url}"
                assert (page.parent / url).resolve().is_file(), f"{page}: {url} is missing"


def test_every_internal_link_resolves(site):
    for page in site["out"].rglob("*.html"):
        for url in re.findall(r'<a\b[^>]*\bhref="([^"#]+)[^"]*"', page.read_text()):
            if url.startswith(("http://", "https://")):
                continue
            assert (page.parent / url).resolve().exists(), f"{page}: broken link {url}"


def test_cli_build(site, tmp_path):
    proc = run_paloma(
        "site", "build", "--submissions", site["root"] / "subs", "--output", tmp_path / "www",
        "--registry", site["registry_file"],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"Built \d+ pages for 4 submission\(s\) to tiny \(val\)", proc.stdout)
    assert (tmp_path / "www" / "index.html").is_file()
    proc = run_paloma("site", "build", "--submissions", tmp_path / "nowhere", "--output", tmp_path / "x")
    assert proc.returncode == 2 and "no such file or folder" in proc.stderr


def test_output_that_is_not_a_site_is_not_replaced(site, tmp_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "index.html").write_text("my homepage")
    with pytest.raises(PalomaError, match="not a paloma site"):
        build(site["root"] / "subs", tmp_path / "precious", registry_file=site["registry_file"], progress=False)
    assert (tmp_path / "precious" / "index.html").read_text() == "my homepage"
    nested = tmp_path / "new" / "folders" / "www"
    build(site["root"] / "subs", nested, registry_file=site["registry_file"], progress=False)
    build(site["root"] / "subs", nested, registry_file=site["registry_file"], progress=False)  # replaces its own
    assert (nested / ".paloma-site").is_file() and sorted(p.name for p in nested.parent.iterdir()) == ["www"]


def test_site_ships_as_package_data():
    from paloma.resources import data_dir

    assert (data_dir("site") / "templates" / "leaderboard.html").is_file()
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"site" = "paloma/_data/site"' in pyproject


def test_a_release_without_submissions_builds_an_empty_site(tmp_path):
    (tmp_path / "subs").mkdir()
    summary = build(tmp_path / "subs", tmp_path / "site", progress=False)
    assert (summary.release, summary.split, summary.submissions) == ("paloma", "test", 0)
    assert "Paloma leaderboard" in (tmp_path / "site" / "index.html").read_text()
    assert "No models to draw" in (tmp_path / "site" / "pareto.html").read_text()
    assert len(list((tmp_path / "site" / "sources").glob("*.html"))) == 16


def test_decontamination_evidence_is_linked(tmp_path):
    registry_file = write_tiny_registry(tmp_path)
    report = write_decon_report(tmp_path / "decon", registry_file)
    write_tiny_manifest(tmp_path / "decon", registry_file, "val")  # the report is checked against the release data
    checksum = json.loads(report.read_text())["index"]["checksum"]
    out = eval_output(tmp_path / "eval", registry_file, model="clean")
    submit(out, metadata("clean", decontamination={"report": str(report)}), tmp_path / "subs", registry_file)
    out = eval_output(tmp_path / "eval-url", registry_file, model="claims")
    url = {"report": "https://example.org/report.json", "index_checksum": checksum}
    submit(out, metadata("claims", decontamination=url), tmp_path / "subs", registry_file)
    build(tmp_path / "subs", tmp_path / "site", registry_file=registry_file, progress=False)
    html = (tmp_path / "site" / "models" / "clean.html").read_text()
    assert checksum in html and "50.000% of documents removed" in html
    assert 'href="../data/submissions/clean-decon-report.json"' in html
    copied = tmp_path / "site" / "data" / "submissions" / "clean-decon-report.json"
    assert copied.read_bytes() == report.read_bytes()
    assert 'class="badge on" title="Decontaminated: the report was checked against the release"' in html
    weaker = (tmp_path / "site" / "models" / "claims.html").read_text()
    assert 'class="badge weak"' in weaker and "Decontamination claimed" in weaker
    rows = {r["name"]: r for r in json.loads((tmp_path / "site" / "data" / "leaderboard.json").read_text())["rows"]}
    assert rows["clean"]["evidence"] == "checked" and rows["claims"]["evidence"] == "linked"


def test_outputs_are_readable_by_others_under_umask_022(tmp_path):
    """Submission files, the site (assets included), the schema and a manifest: 0644 files in 0755 folders."""
    import os
    import stat

    from leaderboard_factory import write_tiny_manifest

    old = os.umask(0o022)
    try:
        registry_file = write_tiny_registry(tmp_path)
        manifest = write_tiny_manifest(tmp_path, registry_file, "val")
        report = write_decon_report(tmp_path, registry_file)
        out = eval_output(tmp_path / "eval", registry_file, model="m")
        submit(out, metadata("m", decontamination={"report": str(report)}), tmp_path / "subs", registry_file)
        build(tmp_path / "subs", tmp_path / "site", registry_file=registry_file, progress=False)
        assert run_paloma("submissions", "schema", "--output", tmp_path / "v1.json").returncode == 0
    finally:
        os.umask(old)
    outputs = [manifest, tmp_path / "v1.json", *(tmp_path / "subs").rglob("*"), tmp_path / "site"]
    outputs += list((tmp_path / "site").rglob("*"))
    assert len(outputs) > 20
    for path in outputs:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))


def test_one_bad_entry_stops_the_build_with_one_line_naming_it(site, tmp_path):
    """A merged submission with 10**400 parameters (which overflowed compute) is named; the old site stays."""
    subs = tmp_path / "subs"
    for name in MODELS:
        (subs / name).mkdir(parents=True)
        (subs / name / "submission.json").write_text((site["root"] / "subs" / name / "submission.json").read_text())
    run_paloma("site", "build", "--submissions", subs, "--output", tmp_path / "www", "--registry",
               site["registry_file"], check=True)  # fmt: skip
    before = (tmp_path / "www" / "index.html").read_text()
    path = subs / "large" / "submission.json"
    path.write_text(path.read_text().replace('"parameters": 900000000', '"parameters": 1' + "0" * 400))
    proc = run_paloma("site", "build", "--submissions", subs, "--output", tmp_path / "www", "--registry",
                      site["registry_file"])  # fmt: skip
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert (
        "invalid submissions, nothing built" in proc.stderr and "large/submission.json: model.parameters" in proc.stderr
    )
    assert (tmp_path / "www" / "index.html").read_text() == before


def test_an_entry_that_cannot_be_rendered_is_named(monkeypatch, site, tmp_path):
    """Past validation, a failure inside one submission's page names it instead of a traceback."""
    from paloma.site import builder

    def broken(self, entry):
        raise OverflowError("math range error")

    monkeypatch.setattr(builder.SiteWriter, "write_submission", broken)
    with pytest.raises(PalomaError, match=r"submission '(small|medium|large|other-vocab)' cannot be rendered "
                                          r"\(OverflowError: math range error\); nothing built"):  # fmt: skip
        build(site["root"] / "subs", tmp_path / "www", registry_file=site["registry_file"], progress=False)
    assert not (tmp_path / "www").exists()
