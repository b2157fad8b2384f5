"""Surgery: turn a PrunePlan into a physically smaller model."""

from netsculpt.surgery.apply import apply_plan_, mask_, validate_plan
from netsculpt.surgery.fixups import ModuleShapes, register_fixup
from netsculpt.surgery.plan import PrunePlan

__all__ = ["ModuleShapes", "PrunePlan", "apply_plan_", "mask_", "register_fixup", "validate_plan"]
