"""The registry holds every Paloma source and domain, and `paloma domains` reports it."""

import json

from paloma.registry import load_registry


def test_registry_counts_match_the_paper():
    totals = load_registry().totals()
    assert (totals["sources"], totals["domains"]) == (18, 585)
    assert (totals["public_sources"], totals["public_domains"]) == (16, 546)
    assert totals["public_tokens_val_test"] == 123_683_201


def test_domain_names_keep_upstream_typos():
    registry = load_registry()
    assert "dolma_100_programing_languages" in registry
    assert "General_referece" in registry.get("m2d2_wikipedia_unsplit").domains
    assert "Human_activites" in registry.get("m2d2_wikipedia_unsplit").domains


def test_flags():
    registry = load_registry()
    assert not registry.get("pile").redistributable and not registry.get("ice").redistributable
    assert {s.name for s in registry.sources if s.fringe} == {"manosphere_meta_sep", "gab", "4chan_meta_sep"}
    assert registry.get("dolma_100_programing_languages").is_code
    assert registry.get("dolma-v1_5").code_domains == ("stack_uniform",)
    assert not registry.get("dolma-v1_5").is_code
    assert len(registry.get("c4_100_domains").domains) == 99
    assert registry.get("manosphere_meta_sep").accepts_domain("manosphere_meta_sep")


def test_paloma_domains_json_reports_totals(paloma_cli):
    proc = paloma_cli("domains", "--json", check=True)
    totals = json.loads(proc.stdout)["totals"]
    assert totals["sources"] == 18 and totals["domains"] == 585
    assert totals["public_sources"] == 16 and totals["public_domains"] == 546


def test_paloma_domains_table(paloma_cli):
    proc = paloma_cli("domains", check=True)
    assert "M2D2 S2ORC" in proc.stdout and "585 domains" in proc.stdout
