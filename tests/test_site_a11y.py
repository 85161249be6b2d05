"""Accessibility: axe-core (npm's `axe-core`, vendored in tests/vendor) finds nothing serious or critical on any
page type, at 1400×900 and on a phone (390×844); on a phone the filters fold away and rank intervals are text.

axe runs inside Debian's Chromium on the site built by test_site_browser's fixture (six models, a ladder, long
names, intervals), opened from disk; no network. Screenshots of each page at both sizes are kept in
test-artifacts/site/.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_site_browser import DESKTOP, PHONE, open_page, screenshot, site  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser

AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text(encoding="utf-8")
PAGES = {
    "leaderboard": "index.html",
    "pareto": "pareto.html",
    "compare": "compare.html#a=medium&b=large",
    "sources": "sources.html",
    "source": "sources/alpha.html",
    "model": "models/large.html",
    "about": "about.html",
    "maintainers": "maintainers.html",
}


def axe_findings(page) -> list[str]:
    """axe's serious and critical violations, one line each (rule, impact, the first few elements)."""
    page.evaluate(AXE)  # through the DevTools protocol: the page's script-src 'self' does not apply
    result = page.evaluate("axe.run(document, {resultTypes: ['violations'], preload: false})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — " + "; ".join(n["html"][:120] for n in v["nodes"][:3])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
@pytest.mark.parametrize("kind", list(PAGES))
def test_axe_finds_nothing_serious(open_page, kind, size):  # noqa: F811
    page = open_page(PAGES[kind], *size)
    page.wait_for_load_state("load")
    page.wait_for_timeout(100)  # the leaderboard and compare tables render from data after load
    screenshot(page, f"a11y-{kind}-{size[0]}")
    found = axe_findings(page)
    assert found == [], "\n".join(found)


def test_on_a_phone_the_filters_fold_away_and_the_table_is_in_the_first_screen(open_page):  # noqa: F811
    page = open_page("index.html", *PHONE)
    page.wait_for_selector("#leaderboard tbody tr")
    assert page.locator("#controls details.filters").get_attribute("open") is None
    assert page.locator("#controls fieldset").first.is_visible() is False
    top = page.evaluate("document.querySelector('#leaderboard tbody tr').getBoundingClientRect().top")
    assert top < PHONE[1], "the first row is on the first screen"
    page.click("#controls details.filters summary")
    assert page.locator("#controls fieldset").first.is_visible()


def test_on_a_desktop_the_filters_are_open(open_page):  # noqa: F811
    page = open_page("index.html", *DESKTOP)
    page.wait_for_selector("#leaderboard tbody tr")
    assert page.locator("#controls fieldset").first.is_visible()


def test_rank_intervals_are_text_in_the_table(open_page, site):  # noqa: F811
    page = open_page("index.html", *PHONE)
    page.wait_for_selector("#leaderboard tbody tr")
    texts = page.eval_on_selector_all("#leaderboard tbody td.rank .stab", "s => s.map(e => e.textContent)")
    assert texts and all(t.split(" ")[0].count("–") == 1 for t in texts), texts
    assert page.locator("#leaderboard tbody td.rank .stab").first.is_visible()
