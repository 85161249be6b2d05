"""SVG helpers escape everything that comes from data, so a label can never become markup."""

import pytest

from paloma import svg

HOSTILE = '</text></svg><img src=x onerror="alert(1)">&'


def test_text_content_is_escaped():
    out = svg.text(1, 2, HOSTILE, class_="tick")
    assert "<img" not in out and "</svg>" not in out
    assert out.startswith('<text x="1" y="2" class="tick">') and out.endswith("</text>")
    assert "&lt;/text&gt;&lt;/svg&gt;&lt;img" in out and "&amp;" in out


def test_attribute_values_are_escaped():
    out = svg.element("circle", cx=1.234567, r=3, data_label=HOSTILE)
    assert out.startswith('<circle cx="1.23" r="3" data-label="&lt;/text&gt;')
    assert '"alert(1)"' not in out and "&quot;alert(1)&quot;" in out


@pytest.mark.parametrize("name", ["onclick", "onload", "x y", 'a"b'])
def test_event_and_malformed_attribute_names_are_refused(name):
    with pytest.raises(ValueError):
        svg.attrs(**{name: "1"})


def test_element_names_are_checked():
    with pytest.raises(ValueError):
        svg.element("script><script", text="x")


def test_non_finite_numbers_never_reach_coordinates():
    assert svg.element("circle", cx=float("nan"), cy=float("inf")) == '<circle cx="0" cy="0"/>'


def test_document_scales_with_a_viewbox():
    out = svg.document(300, 200, svg.title("t"), font_family="sans-serif")
    assert out.startswith('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 300 200" font-family="sans-serif">')
    assert out.endswith("<title>t</title></svg>")
