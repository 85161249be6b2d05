"""The built site in headless Chromium, opened from disk: sorting, filters, tooltips, links, layout, no errors.

Layouts are checked at 1400×900 (a laptop) and 390×844 (a phone): sticky rank and model columns, at least
four labelled ticks per chart axis, chart text of at least 11 px, and no page wider than the screen except
the leaderboard table's own scroll area. Uses Debian's chromium (installed by .ci/run) through Playwright; no
browser is downloaded. Screenshots of each page type are kept in test-artifacts/site/.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from leaderboard_factory import eval_output, metadata, write_tiny_registry

from paloma.analysis.ladder import fit_runs
from paloma.analysis.ladder.extension import ladder_extra
from paloma.analysis.runs import load_run
from paloma.intervals import MIN_EFFECTIVE_DOCUMENTS
from paloma.site.builder import build
from paloma.submissions.submit import submit

pytestmark = pytest.mark.browser

ARTIFACTS = REPO_ROOT / "test-artifacts" / "site"
EVIL = "<script>window.pwned=1</script><img src=x onerror=window.pwned=2>"
DESKTOP, PHONE = (1400, 900), (390, 844)
LONG_NAME = "An Extremely Verbose Model Name " * 6 + "Final"  # 197 characters
DOCUMENTS = MIN_EFFECTIVE_DOCUMENTS  # the fewest per domain the interval policy gives intervals for

MODELS = {  # name: (quality, fixed vocabulary, parameters, training tokens, checkpoint)
    "small": (1.2, True, 100_000_000, 4_000_000_000, None),
    "medium": (1.0, True, 300_000_000, 2_000_000_000, None),
    "large": (0.8, True, 900_000_000, 6_000_000_000, None),
    "other-vocab": (0.42, False, 500_000_000, 1_000_000_000, None),
    "run-b-half": (1.1, True, 200_000_000, 1_000_000_000, 0.5),
    "run-b-final": (0.95, True, 200_000_000, 2_000_000_000, 1.0),
}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser-site")
    registry_file = write_tiny_registry(root)
    outs = {}
    for name, (quality, fixed, params, tokens, _) in MODELS.items():
        outs[name] = eval_output(root / f"eval-{name}", registry_file, model=name, quality=quality,
                                 fixed_vocabulary=fixed, parameters=params, non_embedding_parameters=params // 2,
                                 with_ci=name in ("medium", "large"), documents_per_domain=DOCUMENTS)  # fmt: skip
        _with_training_tokens(outs[name], tokens)
    ladder = fit_runs([load_run(outs[n]) for n in ("small", "medium", "large", "run-b-half", "run-b-final")],
                      levels=("suite", "source"), predict=(7e9, 1.4e11), loo=False)  # fmt: skip
    for name, (_, fixed, _, tokens, fraction) in MODELS.items():
        meta = metadata(name, fixed_vocabulary=fixed, training_tokens=tokens, description=f"About {name}: {EVIL}")
        if name == "small":
            meta["display_name"] = LONG_NAME
        if name == "large":
            meta["extra"] = {"ladder": ladder_extra(ladder)}
        if fraction is not None:
            meta["checkpoint"] = {"run": "run-b", "lr_schedule_fraction": fraction}
        submit(outs[name], meta, root / "subs", registry_file)
    build(root / "subs", root / "out", registry_file=registry_file, progress=False)
    return root / "out"


def _with_training_tokens(out: Path, tokens: int) -> None:
    """The ladder fit reads D from results.json, as `paloma eval` records it for models trained by baselines/."""
    path = out / "results.json"
    results = json.loads(path.read_text())
    results["model"]["training_tokens"] = tokens
    path.write_text(json.dumps(results))


@pytest.fixture
def open_page(browser, site):
    """Open a page of the site from disk; the test fails on any console error or uncaught exception."""
    errors: list[str] = []
    pages = []

    def opener(path: str, width: int = DESKTOP[0], height: int = DESKTOP[1]):
        page = browser.new_page(viewport={"width": width, "height": height})
        page.on("console", lambda m: errors.append(f"{path}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"{path}: {e}"))
        file, _, fragment = path.partition("#")
        page.goto((site / file).as_uri() + (f"#{fragment}" if fragment else ""))
        pages.append(page)
        return page

    yield opener
    for page in pages:
        page.close()
    assert errors == []


def column(page, key: str) -> list[str]:
    """Texts of one leaderboard column, in row order (for the rank, the rank itself, not its interval beside it)."""
    index = page.eval_on_selector_all(
        "#leaderboard thead th", f"ths => ths.findIndex(th => th.dataset.key === '{key}')"
    )
    inner = " .rank-value" if key == "rank" else ""
    return page.eval_on_selector_all(
        f"#leaderboard tbody tr td:nth-child({index + 1}){inner}", "tds => tds.map(td => td.textContent)"
    )


def model_names(page) -> list[str]:
    return page.eval_on_selector_all("#leaderboard tbody td.model-col a", "as => as.map(a => a.textContent)")


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def expected_order(site: Path, fixed_only: bool = False) -> list[str]:
    """Final models by suite bits per byte, from the site's data (checked against the sums in test_site.py)."""
    rows = json.loads((site / "data" / "leaderboard.json").read_text())["rows"]
    rows = [r for r in rows if r["final"] and (r["vocab"] or not fixed_only)]
    return [r["label"] for r in sorted(rows, key=lambda r: r["suite"]["all"]["bpb"])]


def horizontal_overflow(page) -> float:
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def test_table_sorts_when_a_header_is_clicked(open_page, site):
    page = open_page("index.html")
    assert model_names(page) == [LONG_NAME if n == "Small" else n for n in expected_order(site)]
    assert column(page, "rank") == ["1", "2", "3", "4", "5"]
    page.click("#leaderboard th[data-key=params] button")
    params = [float(v.rstrip("M")) for v in column(page, "params")]
    assert params == sorted(params) and page.get_attribute("th[data-key=params]", "aria-sort") == "ascending"
    page.click("#leaderboard th[data-key=params] button")
    params = [float(v.rstrip("M")) for v in column(page, "params")]
    assert params == sorted(params, reverse=True)
    assert page.get_attribute("th[data-key=params]", "aria-sort") == "descending"
    page.click("#leaderboard th[data-key=model] button")
    assert model_names(page) == sorted(model_names(page), key=str.lower)


def test_sorting_works_from_the_keyboard(open_page):
    page = open_page("index.html")
    page.focus("#leaderboard th[data-key=tokens] button")
    page.keyboard.press("Enter")
    tokens = [float(v.rstrip("B")) for v in column(page, "tokens")]
    assert tokens == sorted(tokens)
    assert page.evaluate("document.activeElement.closest('th').dataset.key") == "tokens"


def test_filters_change_the_rows_and_columns(open_page):
    page = open_page("index.html")
    assert len(model_names(page)) == 5
    page.check("input[name=vocab]")
    assert "Other Vocab" not in model_names(page) and len(model_names(page)) == 4
    page.uncheck("input[name=vocab]")
    page.check("input[value=ppl]")
    assert "Other Vocab" not in model_names(page)
    assert "perplexity" in page.text_content("#status")
    page.select_option("select[name=group]", "standard")
    headers = page.eval_on_selector_all("#leaderboard thead th", "ths => ths.map(th => th.textContent)")
    assert "Alpha" in headers and "Beta" in headers and "Gamma" not in headers and "Standard" in headers
    page.select_option("select[name=checkpoints]", "0.5")
    assert model_names(page) == ["Run B Half"] and column(page, "rank") == ["1"]
    page.select_option("select[name=checkpoints]", "all")
    assert len(model_names(page)) == 5  # six submissions, one without the fixed vocabulary
    ranks = dict(zip(model_names(page), column(page, "rank"), strict=True))
    page.fill("input[name=q]", "medium")
    assert model_names(page) == ["Medium"]
    assert column(page, "rank") == [ranks["Medium"]]  # searching does not change the rank
    assert "q=medium" in page.evaluate("location.hash")  # the view is a shareable link
    screenshot(page, "leaderboard-filtered")


def test_rank_is_within_the_selected_group(open_page, site):
    page = open_page("index.html")
    assert "Other Vocab" in expected_order(site)[:2]  # ranked second overall...
    page.check("input[name=vocab]")
    shown = [LONG_NAME if n == "Small" else n for n in expected_order(site, fixed_only=True)]
    assert model_names(page) == shown  # ...and left out here
    assert column(page, "rank") == ["1", "2", "3", "4"]


def test_chart_shows_a_tooltip_on_hover(open_page):
    page = open_page("pareto.html")
    assert page.is_hidden("#tooltip")
    dot = page.locator("section[data-view=all] .dot.front").first
    dot.hover()
    tooltip = page.locator("#tooltip")
    assert tooltip.is_visible()
    assert dot.get_attribute("data-tip") in tooltip.text_content()
    assert "bits per byte" in tooltip.text_content()
    screenshot(page, "pareto")


def test_links_between_pages_work(open_page):
    page = open_page("index.html")
    page.click("#leaderboard tbody tr:first-child td.model-col a")
    assert page.url.endswith("/models/large.html")
    assert page.title() == "Large · tiny leaderboard (not Paloma)"
    assert page.text_content("h1") == "Large"
    page.click("text=Alpha")
    assert page.url.endswith("/sources/alpha.html") and page.text_content("h1") == "Alpha"
    page.click("nav[aria-label=Site] >> text=Pareto")
    assert page.url.endswith("/pareto.html")
    page.click("nav[aria-label=Site] >> text=Leaderboard")
    page.check("#leaderboard tbody tr:nth-child(1) input[type=checkbox]")
    page.check("#leaderboard tbody tr:nth-child(4) input[type=checkbox]")
    page.click("#compare-link")
    assert page.url.endswith("compare.html#a=large&b=medium")
    page.wait_for_selector("text=Domains won by A")
    assert "A wins 7, B wins 0" in page.get_attribute(".wins", "aria-label")  # large beats medium everywhere


def test_compare_page_counts_wins_and_lists_changes(open_page):
    page = open_page("compare.html#a=medium&b=other-vocab")
    page.wait_for_selector("text=Domains won by B")
    assert "bits per byte (the vocabularies differ)" in page.text_content("#compare-out")
    rows = page.eval_on_selector_all("#compare-out table.sortable tbody tr", "trs => trs.length")
    assert rows == 4 + 7  # the four sources, then all seven domains
    page.click("#swap")
    assert page.evaluate("location.hash") == "#a=other-vocab&b=medium"
    screenshot(page, "compare")


def test_submission_page_shows_markup_as_text_and_runs_no_injected_script(open_page):
    page = open_page("models/medium.html")
    assert EVIL in page.text_content(".description")
    assert page.evaluate("window.pwned") is None
    assert page.locator(".description img").count() == 0
    page.click("summary:has-text('Alpha')")
    assert page.is_visible("text=a2")
    screenshot(page, "submission")


def test_source_page_tabs_and_best_marks(open_page):
    page = open_page("sources/alpha.html")
    assert page.is_visible("#panel-bpb") and page.is_hidden("#panel-ppl")
    page.focus("#tab-bpb")
    page.keyboard.press("ArrowRight")
    assert page.is_visible("#panel-ppl") and page.is_hidden("#panel-bpb")
    assert page.locator("#panel-ppl td.best").count() == 3
    screenshot(page, "source")


def test_every_page_loads_without_console_errors(open_page, site):
    for path in sorted(site.rglob("*.html")):
        page = open_page(str(path.relative_to(site)))
        assert page.title(), path
        assert page.locator("h1").count() == 1, path
    for name, path in (("sources", "sources.html"), ("about", "about.html"), ("leaderboard", "index.html")):
        screenshot(open_page(path), name)


PAGE_TYPES = ["index.html", "pareto.html", "compare.html#a=medium&b=large", "models/large.html", "models/small.html",
              "sources/alpha.html", "sources.html", "about.html"]  # fmt: skip


@pytest.mark.parametrize("path", PAGE_TYPES)
def test_no_page_is_wider_than_a_phone(open_page, path):
    """Only the leaderboard table scrolls sideways, inside its own area; every page fits 390 px."""
    page = open_page(path, *PHONE)
    page.wait_for_load_state("load")
    if path.startswith("compare"):
        page.wait_for_selector("text=Domains won by B")
    assert horizontal_overflow(page) <= 0
    name = path.split("#")[0].replace("/", "-").removesuffix(".html")
    screenshot(page, f"{name}-phone")


def test_rank_and_model_columns_stay_when_the_table_scrolls(open_page):
    for width, height in (DESKTOP, PHONE):
        page = open_page("index.html", width, height)
        wrap = page.locator(".table-wrap").first
        before = page.eval_on_selector("#leaderboard tbody tr td.model-col", "td => td.getBoundingClientRect().left")
        rank_before = page.eval_on_selector("#leaderboard tbody tr td.rank", "td => td.getBoundingClientRect().left")
        scrollable = wrap.evaluate("w => w.scrollWidth - w.clientWidth")
        wrap.evaluate("w => { w.scrollLeft = w.scrollWidth; }")
        after = page.eval_on_selector("#leaderboard tbody tr td.model-col", "td => td.getBoundingClientRect().left")
        rank_after = page.eval_on_selector("#leaderboard tbody tr td.rank", "td => td.getBoundingClientRect().left")
        assert (after, rank_after) == (before, rank_before)
        box = page.eval_on_selector("#leaderboard tbody tr td.rank input", "i => i.getBoundingClientRect().left")
        assert box >= rank_after  # the tick box is whole, inside its sticky cell
        if width == PHONE[0]:
            assert scrollable > 0  # the table does scroll on a phone, and the two columns stayed
            # nothing shows through the sticky columns: they are opaque
            assert page.eval_on_selector("#leaderboard td.rank", "td => getComputedStyle(td).backgroundColor") not in (
                "rgba(0, 0, 0, 0)", "transparent")  # fmt: skip
            screenshot(page, "leaderboard-phone-scrolled")


def test_long_names_are_truncated_with_a_tooltip(open_page):
    page = open_page("index.html")
    link = page.locator("#leaderboard td.model-col a", has_text="An Extremely Verbose").first
    assert link.get_attribute("title") == LONG_NAME
    assert link.evaluate("a => a.scrollWidth > a.clientWidth")  # cut with an ellipsis, the full name on hover
    box = link.bounding_box()
    assert box["height"] < 30  # one line, so the scores stay beside it
    suite = page.locator("#leaderboard thead th.suite").bounding_box()
    assert suite["x"] + suite["width"] <= DESKTOP[0]  # the suite score is on screen at 1400 px
    screenshot(page, "leaderboard-desktop")


def test_best_value_per_column_is_marked(open_page, site):
    page = open_page("index.html")
    columns = page.eval_on_selector_all("#leaderboard thead th", "ths => ths.map(th => th.dataset.key || '')")
    for key in [k for k in columns if k == "suite" or k.startswith("src:")]:
        cells = column(page, key)
        index = columns.index(key) + 1
        marked = page.eval_on_selector_all(
            f"#leaderboard tbody td:nth-child({index})", "tds => tds.map(td => td.classList.contains('best'))"
        )
        values = [float(c.lstrip("★ ")) for c in cells]
        assert marked.count(True) == values.count(min(values)) >= 1, key
        assert values[marked.index(True)] == min(values)


def test_column_chooser_parameter_filter_and_sort_live_in_the_url(open_page):
    page = open_page("index.html")
    page.click("#columns-chooser summary")
    page.uncheck("#chooser-body input[data-source=beta]")
    headers = page.eval_on_selector_all("#leaderboard thead th", "ths => ths.map(th => th.textContent)")
    assert "Beta" not in headers and "Alpha" in headers
    page.select_option("select[name=pmin]", str(300_000_000))
    assert all(float(v.rstrip("MB")) * (1e9 if v.endswith("B") else 1e6) >= 3e8 for v in column(page, "params"))
    page.click("#leaderboard th[data-key=tokens] button")
    page.click("#leaderboard th[data-key=tokens] button")
    shown = model_names(page)
    url = page.url
    assert "hide=beta" in url and "pmin=300000000" in url and "sort=tokens" in url and "dir=desc" in url
    again = open_page("index.html#" + url.split("#", 1)[1])
    assert model_names(again) == shown
    headers = again.eval_on_selector_all("#leaderboard thead th", "ths => ths.map(th => th.textContent)")
    assert "Beta" not in headers and again.get_attribute("th[data-key=tokens]", "aria-sort") == "descending"


def _tick_labels(page, view: str = "all") -> list[list[str]]:
    """Per chart of a view: the x labels and the y labels that are shown (non-empty)."""
    return page.eval_on_selector_all(
        f"section[data-view={view}] svg.chart-svg",
        """svgs => svgs.map(svg => {
            const texts = Array.from(svg.querySelectorAll('.axis text:not(.axis-label)'));
            const bottom = svg.viewBox.baseVal.height - 64;
            const x = texts.filter(t => +t.getAttribute('y') > bottom && t.textContent).map(t => t.textContent);
            const y = texts.filter(t => +t.getAttribute('y') <= bottom && t.textContent).map(t => t.textContent);
            return [x, y];
        })""",
    )


def test_pareto_axes_have_four_labels_readable_on_a_phone(open_page):
    for width, height in (DESKTOP, PHONE):
        page = open_page("pareto.html", width, height)
        for x_labels, y_labels in _tick_labels(page):
            assert len(x_labels) >= 4 and len(y_labels) >= 4, (x_labels, y_labels)
        smallest = page.eval_on_selector_all(
            "section[data-view=all] svg.chart-svg .axis text",
            "ts => Math.min(...ts.map(t => parseFloat(getComputedStyle(t).fontSize) * "
            "t.ownerSVGElement.getScreenCTM().a))",
        )
        assert smallest >= 11, (width, smallest)
        overlap = page.eval_on_selector_all(
            "section[data-view=all] svg.chart-svg",
            """svgs => svgs.some(svg => {
                const boxes = Array.from(svg.querySelectorAll('.axis text')).filter(t => t.textContent)
                    .map(t => t.getBoundingClientRect());
                return boxes.some((a, i) => boxes.some((b, j) => j > i && a.left < b.right && b.left < a.right
                    && a.top < b.bottom && b.top < a.bottom));
            })""",
        )
        assert not overlap
        screenshot(page, f"pareto-{width}")


def test_every_chart_point_is_reachable_by_keyboard_and_the_frontier_is_a_table(open_page):
    page = open_page("pareto.html")
    dots = page.locator("section[data-view=all] .chart").first.locator("a.dot")
    assert dots.count() == 5 and all(dots.nth(i).get_attribute("tabindex") is None for i in range(5))
    off_front = page.locator("section[data-view=all] .chart").first.locator("a.dot:not(.front)").first
    off_front.focus()
    assert page.is_visible("#tooltip") and off_front.get_attribute("data-tip") in page.text_content("#tooltip")
    table = page.locator("section[data-view=all] .chart").first.locator(".frontier-table tbody tr")
    front = page.locator("section[data-view=all] .chart").first.locator("a.dot.front")
    assert table.count() == front.count() >= 1


def test_submission_page_draws_the_ladder_readably(open_page):
    for width, height in (DESKTOP, PHONE):
        page = open_page("models/large.html", width, height)
        panels = page.locator(".ladder-panel svg")
        assert panels.count() == 5  # the suite and four sources
        smallest = page.eval_on_selector_all(
            ".ladder-panel svg text",
            "ts => Math.min(...ts.map(t => parseFloat(t.getAttribute('font-size')) * "
            "t.ownerSVGElement.getScreenCTM().a))",
        )
        assert smallest >= 11 * (0.85 if width == DESKTOP[0] else 1), smallest
        assert horizontal_overflow(page) <= 0
        page.locator(".ladder-grid").scroll_into_view_if_needed()
        screenshot(page, f"submission-ladder-{width}")


def test_compare_switches_metric_and_shows_intervals(open_page):
    page = open_page("compare.html#a=medium&b=large")
    page.wait_for_selector("text=Domains won by B")
    names = page.eval_on_selector_all(
        ".card-name", "ns => ns.map(n => [n.textContent, getComputedStyle(n).textTransform])"
    )
    assert names[:2] == [["Medium", "none"], ["Large", "none"]]
    intervals = page.eval_on_selector_all("#compare-out td.ci", "tds => tds.map(td => td.textContent)")
    assert intervals and all("…" in t for t in intervals)  # both carry intervals from enough documents per domain
    page.check("input[name=metric][value=ppl]")
    page.wait_for_selector("text=Compared in perplexity")
    assert "metric=ppl" in page.url
    page.select_option("#pick-b", "other-vocab")
    page.wait_for_selector("text=the vocabularies differ")
    assert page.is_disabled("input[name=metric][value=ppl]")
    screenshot(page, "compare-desktop")


def test_empty_leaderboard_has_no_errors(browser, tmp_path):
    (tmp_path / "subs").mkdir()
    build(tmp_path / "subs", tmp_path / "site", progress=False)
    for path in ("index.html", "compare.html", "pareto.html", "sources/c4_en.html"):
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
        page.on("console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None)
        page.goto((tmp_path / "site" / path).as_uri())
        assert errors == [], path
        if path == "index.html":
            assert page.text_content("#status").startswith("0 of 0 submissions")
        page.close()


def test_long_leaderboards_show_rows_in_pages(browser, tmp_path):
    """With more rows than one page (100), sorting works on all of them and 'Show more' adds the next page."""
    from leaderboard_factory import write_submissions_quickly

    registry_file = write_tiny_registry(tmp_path)
    write_submissions_quickly(tmp_path, registry_file, count=130)
    build(tmp_path / "subs", tmp_path / "site", registry_file=registry_file, progress=False)
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((tmp_path / "site" / "index.html").as_uri())
    assert len(model_names(page)) == 100
    assert page.text_content("#status").startswith("100 shown of 130 matching of 130 submissions")
    page.click("#leaderboard th[data-key=params] button")
    page.click("#leaderboard th[data-key=params] button")  # descending: the largest of all 130 comes first
    assert column(page, "params")[0] == "13B"
    page.click("#show-more")
    assert len(model_names(page)) == 130 and page.is_hidden("#show-more")
    assert errors == []
    page.close()


def test_at_1400_px_half_of_palomas_sixteen_sources_are_in_view(browser, tmp_path):
    """With the real registry: rank, model, suite and 8 of 16 sources without scrolling; the rest one scroll
    (or the column chooser) away, while rank and model stay."""
    registry = REPO_ROOT / "domains" / "paloma.json"
    for i, quality in enumerate((1.0, 0.9, 1.1)):
        out = eval_output(tmp_path / f"eval-{i}", registry, model=f"m{i}", quality=quality, split="test")
        submit(out, metadata(f"paloma-model-{i}"), tmp_path / "subs")
    build(tmp_path / "subs", tmp_path / "site", progress=False)
    page = browser.new_page(viewport={"width": DESKTOP[0], "height": DESKTOP[1]})
    page.goto((tmp_path / "site" / "index.html").as_uri())
    in_view = page.eval_on_selector_all(
        "#leaderboard thead th[data-key^='src:']",
        f"ths => ths.filter(th => th.getBoundingClientRect().right <= {DESKTOP[0]}).length",
    )
    assert page.eval_on_selector_all("#leaderboard thead th[data-key^='src:']", "ths => ths.length") == 16
    assert in_view >= 8
    screenshot(page, "leaderboard-paloma-1400")
    page.close()
