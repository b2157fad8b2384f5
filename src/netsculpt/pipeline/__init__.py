"""The main job: a YAML recipe run stage by stage into a resumable run directory."""

from netsculpt.pipeline import depth_stages, gpp_stages, weight_stages  # noqa: F401  (register their stages)
from netsculpt.pipeline.recipe import Recipe, default_recipe_path, load_recipe, parse_recipe
from netsculpt.pipeline.runner import run_recipe
from netsculpt.pipeline.stages import STAGES, RunContext, stage
from netsculpt.pipeline.summary import print_summary

__all__ = [
    "STAGES",
    "Recipe",
    "RunContext",
    "default_recipe_path",
    "load_recipe",
    "parse_recipe",
    "print_summary",
    "run_recipe",
    "stage",
]
