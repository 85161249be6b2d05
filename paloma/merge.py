"""Alias of `paloma.analysis.merge`, where parameter averaging now lives with the other analyses.

`paloma.merge.load_merged("recipe.yaml")` and `paloma.merge.merge(...)` were documented as the Python API
(docs/analysis.md), so scripts written against them keep working; new code imports `paloma.analysis.merge`.
"""

from paloma.analysis.merge import MergeRecipe, is_merge_recipe, load_merged, make_recipe, merge, read_recipe

__all__ = ["MergeRecipe", "is_merge_recipe", "load_merged", "make_recipe", "merge", "read_recipe"]
