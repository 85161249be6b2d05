"""Hostile submissions: every trick a stranger's pull request may try is refused with one exact line, or renders
as inert text in Chromium.

Each case starts from a valid submission made by `paloma submit` for a release with a manifest, changes it as an
attacker would (recomputing the aggregates or the fingerprint where that makes the lie consistent, so only the
check under test can catch it) and validates it alone: a lie must not need a second, honest submission to be
found. The inertness cases build a site from submissions whose every free-text field holds markup and open each
page in headless Chromium.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from leaderboard_factory import eval_output, metadata, write_decon_report, write_tiny_manifest, write_tiny_registry

from paloma import metrics
from paloma.protocol import FINGERPRINT_FIELDS, Protocol
from paloma.registry import load_registry_file
from paloma.site.builder import build
from paloma.submissions.submit import submit
from paloma.submissions.validate import validate

XSS = '</text></svg><img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """A registry with its val manifest, a real decon report, and one valid submission to start every case from."""
    root = tmp_path_factory.mktemp("hostile")
    registry_file = write_tiny_registry(root)
    write_tiny_manifest(root, registry_file, "val")
    report = write_decon_report(root, registry_file)
    out = eval_output(root / "eval", registry_file, model="honest", with_ci=True)
    path = submit(out, metadata("honest", decontamination={"report": str(report)}), root / "subs", registry_file)
    assert validate([root / "subs"], registry_file).problems == []
    other = eval_output(root / "eval-b", registry_file, model="neighbour", quality=0.9)
    neighbour = submit(other, metadata("neighbour", display_name="OLMo 7B"), root / "subs-b", registry_file)
    return {"root": root, "registry_file": registry_file, "folder": path.parent, "neighbour": neighbour.parent}


def refresh_aggregates(data: dict, registry_file: Path) -> None:
    """Recompute the claimed aggregates from the (altered) sums, as a careful cheater would."""
    sums = {
        (source, domain): metrics.DomainSums(
            **{k: d[k] for k in ("nll_sum", "tokens", "bytes", "documents") if k in d},
            chars=d.get("chars", 0),
            words=d.get("words", 0),
            empty_documents=d.get("empty_documents", 0),
        )
        for source, domains in data["results"].items()
        for domain, d in domains.items()
    }
    fresh = metrics.aggregate(sums, load_registry_file(registry_file))

    def num(v):
        return v if v is not None and math.isfinite(v) else None

    data["aggregates"]["suite"] = {k: num(fresh["suite"][k]) for k in data["aggregates"]["suite"]}
    data["aggregates"]["sources"] = {
        s: {k: num(fresh["sources"][s][k]) for k in ("macro_ppl", "macro_bpb")} for s in data["aggregates"]["sources"]
    }


def refingerprint(data: dict) -> None:
    data["protocol"]["fingerprint"] = Protocol(**{k: data["protocol"][k] for k in FINGERPRINT_FIELDS}).fingerprint()


@dataclass(frozen=True)
class Hostile:
    id: str
    change: Callable  # (data, folder, world) -> None: alter the JSON and/or the submission's folder
    expect: str  # the exact `FIELD: message` (or message) fragment validate must report


def _set(path: str, value) -> Callable:
    def change(data, folder, world):
        *parents, last = path.split(".")
        target = data
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[last] = value

    return change


def _then_refresh(change: Callable) -> Callable:
    def both(data, folder, world):
        change(data, folder, world)
        refresh_aggregates(data, world["registry_file"])

    return both


def _zero_hard_domains(data, folder, world):
    hardest = sorted(
        ((d["nll_sum"] / d["tokens"], s, name) for s, ds in data["results"].items() for name, d in ds.items()),
        reverse=True,
    )[:2]
    for _, source, domain in hardest:
        data["results"][source][domain].update(tokens=0, nll_sum=0.0)
        data["results"][source][domain].pop("ci", None)


def _shrink_hard_domains(data, folder, world):
    """NLL × 0.01 on the two hardest domains, tokens kept (a ceiling alone let this through)."""
    hardest = sorted(
        ((d["nll_sum"] / d["tokens"], s, name) for s, ds in data["results"].items() for name, d in ds.items()),
        reverse=True,
    )[:2]
    for _, source, domain in hardest:
        data["results"][source][domain]["nll_sum"] *= 0.01
        data["results"][source][domain].pop("ci", None)


def _zero_width_ci(data, folder, world):
    d = data["results"]["alpha"]["a1"]
    estimate = d["nll_sum"] / (d["bytes"] * math.log(2))
    d["ci"]["bpb"] = [estimate, estimate]


def _half_domain(data, folder, world):
    d = data["results"]["alpha"]["a2"]
    for key in ("nll_sum", "tokens", "bytes", "documents", "chars", "words"):
        d[key] = d[key] / 2 if key == "nll_sum" else d[key] // 2
    d.pop("ci", None)


def _other_revision(data, folder, world):
    data["protocol"]["data_revision"] = "sha256:00000000deadbeef"
    refingerprint(data)


def _symlink_out(name: str) -> Callable:
    def change(data, folder, world):
        outside = world["root"] / f"outside-{name}"
        shutil.copyfile(folder / name, outside)
        (folder / name).unlink()
        (folder / name).symlink_to(outside)

    return change


def _report(content) -> Callable:
    def change(data, folder, world):
        (folder / "decon-report.json").write_text(
            json.dumps(content(json.loads((folder / "decon-report.json").read_text())))
        )

    return change


DEEP = "__5000 levels of nesting, written as text (json.dumps itself would overflow)__"


def _deep(depth: int) -> dict:
    value: object = 1
    for _ in range(depth):
        value = {"x": value}
    return value


def _too_big(data, folder, world):
    data["model"]["description"] = "x" * 5000
    data["extra"] = {"notes": ["y" * 9000] * 60}


def _alter(source: str, domain: str, key: str, value) -> Callable:
    """Change one sum of a domain (its interval, now stale, goes too), then refresh the aggregates."""

    def change(data, folder, world):
        data["results"][source][domain][key] = value
        data["results"][source][domain].pop("ci", None)

    return _then_refresh(change)


def _ci(bounds: list) -> Callable:
    return _set("results.alpha.a1.ci.bpb", bounds)


def _estimate(data) -> float:
    d = data["results"]["alpha"]["a1"]
    return d["nll_sum"] / (d["bytes"] * math.log(2))


CASES = [
    # stored XSS through the ladder chart's axis label, and an unconstrained `extra`
    Hostile(
        "xss-ladder-parameters",
        _set("extra", {"ladder": {"parameters": XSS, "points": [{"name": "a", "n": 1e6, "d": 1e8}], "fits": []}}),
        "extra.ladder.parameters: Input should be 'non_embedding' or 'total'",
    ),
    Hostile(
        "ladder-wrong-type",
        _set("extra", {"ladder": {"points": [{"name": "a", "n": 1e6, "d": 1e8}], "fits": "x"}}),
        "extra.ladder.fits: Input should be a valid list",
    ),
    Hostile(
        "ladder-nan-law",
        _set(
            "extra",
            {
                "ladder": {
                    "points": [{"name": "a", "n": 1e6, "d": 1e8}],
                    "fits": [
                        {
                            "target": "suite",
                            "law": {"E": 1, "A": 1, "alpha": 0.3, "B": 1, "beta": float("nan")},
                            "observed": [2.0],
                        }
                    ],
                }
            },
        ),
        "extra: extra holds a non-finite number",
    ),
    Hostile("extra-deep", _set("extra", {"notes": _deep(12)}), "extra is nested deeper than 8 levels"),
    Hostile("json-very-deep", _set("extra", {"notes": DEEP}), "JSON nested deeper than 32 levels"),
    Hostile("extra-huge", _too_big, "more than the 524288 allowed"),
    Hostile("extra-unsafe-key", _set("extra", {"<b>": 1}), "'<b>' is not a safe name"),
    # symlinks followed and published
    Hostile("symlink-submission", _symlink_out("submission.json"), "is a symbolic link; links are not allowed"),
    Hostile("symlink-decon-report", _symlink_out("decon-report.json"), "is a symbolic link; links are not allowed"),
    Hostile(
        "report-outside-folder",
        _set("guidelines.decontamination.report", "../x.json"),
        "must be a plain file name beside submission.json",
    ),
    # one entry that broke the build for everyone
    Hostile(
        "parameters-10-400",
        _set("model.parameters", 10**400),
        "model.parameters: Input should be less than or equal to 100000000000000",
    ),
    Hostile(
        "infinite-compute",
        _set("model.training_tokens", 10**300),
        "model.training_tokens: Input should be less than or equal to",
    ),
    Hostile(
        "non-embedding-huge",
        _set("model.non_embedding_parameters", 10**300),
        "model.non_embedding_parameters: Input should be less",
    ),
    Hostile(
        "tokens-huge",
        _set("results.alpha.a1.tokens", 10**30),
        "results.alpha.a1.tokens: Input should be less than or equal to",
    ),
    Hostile(
        "nll-negative",
        _set("results.alpha.a1.nll_sum", -1.0),
        "results.alpha.a1.nll_sum: Input should be greater than or equal to 0",
    ),
    Hostile(
        "nll-infinite",
        _set("results.alpha.a1.nll_sum", float("inf")),
        "results.alpha.a1.nll_sum: must be a finite number",
    ),
    # names that lie
    Hostile(
        "bidi-override",
        _set("model.display_name", "OLMo 7B \u202egnp.exe"),
        "holds an invisible formatting character (bidi override, zero-width, ...) (U+202E)",
    ),
    Hostile(
        "zero-width",
        _set("model.organisation", "Allen\u200bAI"),
        "holds an invisible formatting character (bidi override, zero-width, ...) (U+200B)",
    ),
    Hostile("control-char", _set("model.display_name", "OLMo\x07 7B"), "holds a control character (U+0007)"),
    Hostile("non-nfc", _set("model.display_name", "Cafe\u0301 7B"), "is not in Unicode NFC form"),
    Hostile("odd-space", _set("model.display_name", "OLMo\u00a07B"), "holds a space other than U+0020 (U+00A0)"),
    Hostile(
        "bidi-in-description",
        _set("model.description", "fine\u2067print"),
        "holds an invisible formatting character (bidi override, zero-width, ...) (U+2067)",
    ),
    Hostile("homoglyph-duplicate", _set("model.display_name", "OLМo 7B"), "looks like"),  # Cyrillic М
    Hostile("digit-for-letter-duplicate", _set("model.display_name", "0LMo 7B"), "looks like"),
    Hostile("markup-name", _set("model.display_name", "<img src=x onerror=alert(1)>"), "holds markup characters"),
    Hostile("unsafe-name", _set("name", "../evil"), "name: '../evil' is not a safe name"),
    Hostile(
        "javascript-link",
        _set("model.links", [{"label": "x", "url": "javascript:alert(1)"}]),
        "model.links.0.url: 'javascript:alert(1)' is not an https URL",
    ),
    Hostile(
        "data-link",
        _set("model.links", [{"label": "x", "url": "data:text/html,<script>1</script>"}]),
        "is not an https URL",
    ),
    # gaming the ranking
    Hostile(
        "zeroed-hard-domains",
        _then_refresh(_zero_hard_domains),
        "bytes of text scored with 0 tokens (a zeroed domain?)",
    ),
    Hostile(
        "half-a-domain",
        _then_refresh(_half_domain),
        "results.alpha.a2: documents is 2, the tiny/val manifest has 4 (a partial or altered evaluation?)",
    ),
    Hostile(
        "bytes-altered",
        _alter("beta", "beta", "bytes", 1000),
        "results.beta.beta: bytes is 1000, the tiny/val manifest has",
    ),
    Hostile(
        "fixed-vocabulary-other-tokens",
        _alter("gamma", "g1", "tokens", 7),
        "results.gamma.g1: tokens is 7, the tiny/val manifest has",
    ),
    Hostile("nll-zero", _alter("gamma", "g2", "nll_sum", 0.0), "nll_sum is 0 over scored tokens"),
    Hostile(
        "fake-fingerprint",
        _set("protocol.fingerprint", "0123456789abcdef"),
        "protocol: protocol.fingerprint is '0123456789abcdef' but the recorded fields give",
    ),
    Hostile(
        "test-split-on-val-run",
        _set("benchmark.split", "test"),
        "protocol: protocol.split is 'val' but benchmark.split is 'test'",
    ),
    Hostile(
        "dtype-int4",
        _set("protocol.dtype", "int4"),
        "protocol: protocol.dtype is 'int4', not one of float32, float64, bfloat16, float16",
    ),
    Hostile(
        "other-data-revision",
        _other_revision,
        "protocol.data_revision: protocol.data_revision is 'sha256:00000000deadbeef', the tiny/val manifest has",
    ),
    Hostile(
        "unknown-preset",
        _set("protocol.preset", "custom"),
        "protocol.preset is 'custom', not one of the benchmark's presets",
    ),
    Hostile(
        "claimed-aggregate",
        _set("aggregates.suite.macro_bpb", 0.0001),
        "aggregates.suite.macro_bpb: claimed 0.0001 but the sums give",
    ),
    # evidence behind badges
    Hostile(
        "empty-decon-report",
        _report(lambda r: {}),
        "the report has no index.checksum: it is not a `paloma decon filter` report",
    ),
    Hostile("decon-report-no-totals", _report(lambda r: {"index": r["index"]}), "the report has no totals.documents"),
    Hostile(
        "decon-dry-run", _report(lambda r: {**r, "dry_run": True}), "the report is of a dry run, which removes nothing"
    ),
    Hostile(
        "decon-other-data",
        _report(
            lambda r: {
                **r,
                "index": {**r["index"], "data": {**r["index"]["data"], "fingerprint": "blake2b-256:" + "0" * 64}},
            }
        ),
        "the index was built from other data (fingerprint",
    ),
    Hostile(
        "decon-missing-source",
        _report(lambda r: {**r, "index": {**r["index"], "data": {**r["index"]["data"], "sources": ["alpha"]}}}),
        "the index does not cover source(s) beta, delta, gamma",
    ),
    Hostile(
        "shrunk-hard-domains",
        _then_refresh(_shrink_hard_domains),
        "bits per byte), below the floor of",
    ),
    Hostile(
        "ci-level-half",
        _set("results.alpha.a1.ci.level", 0.5),
        "results.alpha.a1.ci: level is 0.5: intervals are shown as 95% intervals, so it must be 0.95",
    ),
    Hostile("ci-zero-width", _zero_width_ci, "has zero width over 4 documents"),
    Hostile(
        "http-link",
        _set("model.links", [{"label": "x", "url": "http://example.org/"}]),
        "model.links.0.url: 'http://example.org/' is not an https URL",
    ),
    Hostile(
        "userinfo-link",
        _set("model.links", [{"label": "x", "url": "https://paypal.com@evil.example/"}]),
        "has a user name before its host",
    ),
    Hostile(
        "http-decon-report",
        _set("guidelines.decontamination.report", "http://example.org/decon.json"),
        "'http://example.org/decon.json' is not an https URL",
    ),
    Hostile("ci-nan", _ci([float("nan"), 1.0]), "results.alpha.a1.ci.bpb.0: must be a finite number"),
    Hostile("ci-negative", _ci([-1.0, 1.0]), "must be ordered (low ≤ high) and ≥ 0"),
    Hostile("ci-inverted", _ci([5.0, 1.0]), "the bpb interval [5.0, 1.0] must be ordered"),
    Hostile("ci-misses-estimate", _ci([10.0, 11.0]), "the bpb interval [10.0, 11.0] does not contain the estimate"),
    # misleading messages
    Hostile(
        "nan-lr-fraction",
        _set("checkpoint", {"run": "r", "lr_schedule_fraction": float("nan")}),
        "checkpoint.lr_schedule_fraction: must be a finite number (NaN and infinity are not numbers here)",
    ),
    Hostile("unknown-field", _set("colour", "blue"), "colour: unknown field (not in schema paloma-submission/1)"),
]


def _prepare(world: dict, tmp: Path, case: Hostile) -> Path:
    subs = tmp / "subs"
    folder = subs / "honest"
    shutil.copytree(world["folder"], folder)
    data = json.loads((folder / "submission.json").read_text())
    case.change(data, folder, world)
    target = folder / "submission.json"
    if not target.is_symlink():
        text = json.dumps(data, ensure_ascii=False).replace(json.dumps(DEEP), "[" * 5000 + "]" * 5000)
        target.write_text(text)
    if case.id in ("homoglyph-duplicate", "digit-for-letter-duplicate"):
        shutil.copytree(world["neighbour"], subs / "neighbour")
    return subs


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_submission_is_refused_with_one_clear_line(case: Hostile, world, tmp_path):
    subs = _prepare(world, tmp_path, case)
    found = [str(p) for p in validate([subs], world["registry_file"]).problems]
    assert any(case.expect in p for p in found), "\n".join(found)
    assert all("\n" not in p for p in found)


def test_at_least_forty_cases():
    assert len(CASES) >= 40


def test_url_report_is_valid_but_labelled_weaker(world, tmp_path):
    case = Hostile("url", _set("guidelines.decontamination.report", "https://example.org/decon.json"), "")
    subs = _prepare(world, tmp_path, case)
    report = validate([subs], world["registry_file"])
    assert report.problems == [] and report.submissions[0].decon_evidence == "linked"


def test_a_folder_named_schema_in_the_path_is_searched(world, tmp_path):
    subs = tmp_path / "schema" / "subs"
    shutil.copytree(world["folder"], subs / "honest")
    report = validate([subs], world["registry_file"])
    assert report.problems == [] and len(report.submissions) == 1


def test_a_special_file_is_not_read(world, tmp_path):
    folder = tmp_path / "subs" / "fifo"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "submission.json")
    (found,) = validate([tmp_path / "subs"], world["registry_file"]).problems
    assert str(found).endswith("the submission file must be a regular file, not a link or special file")


def test_without_a_manifest_nothing_is_verified_and_it_says_what_to_run(world, tmp_path):
    registry_file = write_tiny_registry(tmp_path)  # a copy of the registry without its manifest beside it
    shutil.copytree(world["folder"], tmp_path / "subs" / "honest")
    report = validate([tmp_path / "subs"], registry_file)
    assert report.problems == [] and report.submissions[0].data_verified is False
    assert report.notes == [
        "no release manifest for tiny/val: counts, data revision, fingerprint, fixed vocabulary and decontamination "
        "reports cannot be checked, so every such submission is shown as 'data unverified'; a maintainer runs once: "
        f"paloma release manifest --data DATA --split val --registry {registry_file} "
        f"--tokenizer FIXED_VOCABULARY_TOKENIZER --output {tmp_path / 'tiny.val.manifest.json'}"
    ]


def test_csv_cells_that_spreadsheets_run_are_neutralised(world, tmp_path):
    subs = tmp_path / "subs"
    shutil.copytree(world["folder"], subs / "honest")
    path = subs / "honest" / "submission.json"
    data = json.loads(path.read_text())
    data["model"].update(display_name="=SUM(1+1)*cmd", organisation="@SUM(1+1)")
    path.write_text(json.dumps(data))
    build(subs, tmp_path / "site", registry_file=world["registry_file"], progress=False)
    text = (tmp_path / "site" / "data" / "leaderboard.csv").read_text()
    assert "'=SUM(1+1)*cmd,'@SUM(1+1)" in text and ",=SUM" not in text and ",@SUM" not in text


# ---- inertness in the browser -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_site(world, tmp_path_factory) -> Path:
    """A site from submissions whose every free-text field (and the ladder's labels) holds markup."""
    root = tmp_path_factory.mktemp("hostile-site")
    subs = root / "subs"
    shutil.copytree(world["folder"], subs / "honest")
    path = subs / "honest" / "submission.json"
    data = json.loads(path.read_text())
    for key in ("description", "training_data", "tokenizer", "model_id", "revision"):
        data["model"][key] = XSS
    data["model"]["links"] = [{"label": "weights", "url": "https://example.org/?q=%3Cscript%3E&a=1"}]
    ladder = {"parameters": "total", "unit": XSS, "points": [], "fits": [], "predict": {"n": 7e9, "d": 1e12}}
    for i, (n, d) in enumerate(((1e8, 2e9), (3e8, 6e9), (1e9, 2e10), (1e8, 4e9), (3e8, 1.2e10))):
        ladder["points"].append({"name": f"{XSS}{i}", "n": n, "d": d})
    law = {"E": 1.7, "A": 400.0, "alpha": 0.34, "B": 410.0, "beta": 0.28}
    observed = [1.7 + 400 / p["n"] ** 0.34 + 410 / p["d"] ** 0.28 for p in ladder["points"]]
    ladder["fits"] = [{"target": f"suite{XSS}", "law": law, "observed": observed, "loo_mean_abs_rel_error": 0.01,
                       "prediction": {"n": 7e9, "d": 1e12, "loss": 1.9}}]  # fmt: skip
    data["extra"] = {"ladder": ladder, "notes": {XSS: [XSS, "javascript:alert(1)"]}}
    path.write_text(json.dumps(data))
    build(subs, root / "site", registry_file=world["registry_file"], progress=False)
    return root / "site"


def test_hostile_site_has_no_markup_from_data_in_its_html(hostile_site):
    """Markup from the data appears only escaped: no tag of it survives (attributes need a tag to live in)."""
    for page in [*hostile_site.rglob("*.html"), *hostile_site.rglob("*.js"), *hostile_site.rglob("*.svg")]:
        text = page.read_text()
        assert "<img" not in text and "<script>window" not in text and "</text></svg>" not in text, page
        assert 'href="javascript:' not in text, page


PAGES = ["index.html", "models/honest.html", "pareto.html", "compare.html", "sources/alpha.html", "sources.html"]


@pytest.mark.browser
@pytest.mark.parametrize("page_path", PAGES)
def test_hostile_site_is_inert_in_chromium(browser, hostile_site, page_path):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((hostile_site / page_path).as_uri())
    page.wait_for_load_state("load")
    assert page.evaluate("window.pwned") is None
    handlers = page.evaluate(
        "Array.from(document.querySelectorAll('*')).flatMap(e => Array.from(e.attributes)"
        ".filter(a => a.name.startsWith('on')).map(a => e.tagName + ' ' + a.name))"
    )
    assert handlers == []
    hrefs = page.evaluate("Array.from(document.querySelectorAll('[href]')).map(e => e.getAttribute('href'))")
    assert not [h for h in hrefs if h.strip().lower().startswith(("javascript:", "data:"))]
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert errors == []
    if page_path == "models/honest.html":
        assert XSS in page.text_content("body")  # shown, as text
        assert page.locator(".ladder-panel svg").count() == 1
    page.close()
