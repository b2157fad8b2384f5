"""Model provenance: how to rebuild a model without pickling it.

A model netsculpt produced carries a plain-dict description of how to rebuild it: its **base** (the
unpruned architecture: a zoo / torchvision / timm name with its options, a trusted builder, or a class
the user must supply) and the ordered **edits** applied since (prune plans, factorisations, ...; see
:mod:`netsculpt.edits`). ``netsculpt.io`` stores it as JSON beside the weights, so loading rebuilds the
base and replays the edits instead of unpickling Python objects.

A model netsculpt did not build gets its base recorded the first time netsculpt edits it (on
netsculpt's own copy): the class, the state-dict shapes and a structural fingerprint, from which
:func:`netsculpt.models.identify.identify_base` later finds the torchvision / timm builder.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import is_lazy

SPEC_ATTR = "netsculpt_spec"

# modules that only act in training (or do nothing): they are left out of the structural fingerprint,
# so a model built with another dropout / drop-path rate still matches its builder; the rates themselves
# are saved beside the base and set back on load (netsculpt.saved.rates)
_TRAIN_ONLY = frozenset(
    {"Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout", "DropPath"}
    | {"DropBlock2d", "Identity", "StochasticDepth"}
)


def is_rate(key: str, value: Any) -> bool:
    """A plain numeric attribute that only matters in training, named for dropping: timm's model-level
    ``drop_rate``, ``MultiheadAttention.dropout``, torchvision's ``_DenseLayer.drop_rate``. Left out of the
    fingerprint like the dropout modules, recorded with them."""
    return "drop" in key.lower() and isinstance(value, int | float) and not isinstance(value, bool)


def state_shapes(model: nn.Module) -> dict[str, list[int]] | None:
    """Every state-dict entry's shape: what a base must match for saved edits and weights to fit.

    None while a lazy module has not yet seen an input (its shapes do not exist yet)."""
    state = model.state_dict()
    if any(is_lazy(value) for value in state.values()):
        return None
    return {key: list(value.shape) for key, value in state.items()}


def structure_fingerprint(
    model: nn.Module, float_dtype: torch.dtype | None = None, json_sequences: bool = False
) -> str:
    """A hash of the module tree (names, classes, hyper-parameters) and state-dict shapes and dtypes.

    Two models with the same fingerprint are the same architecture for every purpose netsculpt has:
    same layers with the same settings, so the same weights compute the same function. ``float_dtype``
    hashes every float entry as that dtype: a builder makes float32, so a user's ``.half()`` model is
    still found as its build (the saved file records the real dtypes, see ``netsculpt.saved.dtypes``).
    ``json_sequences`` hashes tuple settings as lists, as a model rebuilt from a JSON config has them
    (UperNet's ``pool_scales``: a tuple by default, a list after ``save_pretrained``).
    """

    def dtype(value: torch.Tensor) -> torch.dtype:
        return float_dtype if float_dtype is not None and value.is_floating_point() else value.dtype

    lines = [f"{type(model).__module__}.{type(model).__qualname__}"]
    for name, module in model.named_modules():
        if type(module).__name__ in _TRAIN_ONLY:
            continue
        kind = f"{type(module).__module__}.{type(module).__qualname__}"
        lines.append(f"{name}|{kind}|{module.extra_repr()}|{_settings(module, json_sequences)}")
    lines += [
        f"{k}|{'lazy' if is_lazy(v) else tuple(v.shape)}|{dtype(v)}" for k, v in model.state_dict().items()
    ]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


_PLAIN = (bool, int, float, str, type(None))

# attributes a module's forward fills in on its first call, by the class that defines them. They record
# what the first input looked like, not how the model was built: torchvision's MultiScaleRoIAlign is built
# with ``scales = map_levels = None`` and sets them from the first feature maps, so every R-CNN that had
# run once stopped matching its builder and was saved as its class (loading then needed ``model=``).
_FORWARD_CACHES: dict[str, frozenset[str]] = {
    "torchvision.ops.poolers.MultiScaleRoIAlign": frozenset({"scales", "map_levels"}),
}


def _forward_caches(module: nn.Module) -> frozenset[str]:
    """The lazily filled attributes of ``module``'s class and of the classes it derives from.

    A named list, not a rule, because the fingerprint is taken of the user's model at save time, when
    nothing tells which attributes its ``__init__`` set: a rule such as "not an ``__init__`` parameter"
    or "None in a fresh build" would also drop real settings (``GeneralizedRCNNTransform.fixed_size`` is
    None unless the user sets it), and a dropped setting can let a different model match. A cache
    missing from this list can only make a model fail to match (loading asks for ``model=``)."""
    names: frozenset[str] = frozenset()
    for cls in type(module).__mro__:
        names |= _FORWARD_CACHES.get(f"{cls.__module__}.{cls.__qualname__}", frozenset())
    return names


def _plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return isinstance(value, _PLAIN)


def _as_json(value: Any) -> str:
    """A plain value as JSON would give it back: tuples become lists."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_as_json(v) for v in value) + "]"
    return repr(value)


def _settings(module: nn.Module, json_sequences: bool = False) -> str:
    """A module's plain-valued attributes (numbers, strings, tuples of them) that ``extra_repr`` leaves
    out. Detectors keep their behaviour there: torchvision's ``GeneralizedRCNNTransform.min_size`` /
    ``max_size``, ``RoIHeads.score_thresh`` / ``detections_per_img``; without them a Faster R-CNN built
    with ``min_size=128`` matched the default builder and reloaded resizing images to 800 px. Caches a
    forward fills in (:data:`_FORWARD_CACHES`) are left out: a rebuilt model fills them on its first call."""
    caches = _forward_caches(module)
    items = [
        f"{key}={_as_json(value) if json_sequences else value!r}"
        for key, value in sorted(vars(module).items())
        if not key.startswith("_")
        and key not in caches
        and key != "training"
        and not key.startswith("netsculpt")
        and _plain(value)
        and not is_rate(key, value)
    ]
    return ",".join(items)


def tag_model(model: nn.Module, base: dict[str, Any]) -> nn.Module:
    """Record that ``model`` is the unedited architecture ``base`` describes."""
    spec = {"base": copy.deepcopy(base), "base_shapes": state_shapes(model), "edits": []}
    object.__setattr__(model, SPEC_ATTR, spec)
    return model


def model_spec(model: nn.Module) -> dict[str, Any] | None:
    """The provenance of ``model`` (``base``, ``base_shapes``, ``edits``), or None if netsculpt has none."""
    spec = getattr(model, SPEC_ATTR, None)
    return copy.deepcopy(spec) if isinstance(spec, dict) and "base" in spec else None


def describe_unbuilt(model: nn.Module) -> dict[str, Any]:
    """The provenance of a model netsculpt did not build, as it is now (nothing is attached to it)."""
    cls = type(model)
    base = {
        "kind": "unidentified",
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "fingerprint": structure_fingerprint(model, float_dtype=torch.float32),  # as builders make it
    }
    if isinstance(getattr(model, "pretrained_cfg", None), dict):  # timm records its architecture here
        base["timm_architecture"] = str(model.pretrained_cfg.get("architecture", ""))
    from netsculpt.saved import huggingface

    hf = huggingface.describe(model)
    if hf:  # a transformers class and its config: rebuilt from them when they make this architecture
        base[huggingface.KIND] = hf
        base["hf_fingerprint"] = structure_fingerprint(model, torch.float32, json_sequences=True)
    from netsculpt.models.identify import feature_options

    features = feature_options(model)
    if features:  # timm features_only=True: no shape shows out_indices or the wrapper class
        base["timm_features"] = features
    from netsculpt.models.detector_options import detector_options

    options = detector_options(model)
    if options:  # a detector's input size and thresholds: no tensor shape shows them
        base["detector_options"] = options
    return {"base": base, "base_shapes": state_shapes(model), "edits": []}


def ensure_base(model: nn.Module) -> None:
    """Before netsculpt first edits a model it did not build, note what the unedited model was."""
    if model_spec(model) is None:
        object.__setattr__(model, SPEC_ATTR, describe_unbuilt(model))
    spec = getattr(model, SPEC_ATTR)
    if spec["base_shapes"] is None and not spec["edits"]:  # built lazy, since run: its shapes now exist
        spec["base_shapes"] = state_shapes(model)


def append_step(model: nn.Module, step: dict[str, Any]) -> None:
    """Record one edit (``{"kind": ..., ...}``, see :mod:`netsculpt.edits`); loading replays them in order."""
    ensure_base(model)  # a no-op after the first edit; callers call it before they change the model
    spec = getattr(model, SPEC_ATTR)
    spec["edits"].append(copy.deepcopy(step))


def append_plan(
    model: nn.Module,
    plan: dict[str, Any],
    input_shapes: list[tuple[int, ...]],
    inputs_layout: list[Any] | None = None,
) -> None:
    """Record a prune plan applied to ``model`` with the example inputs it was traced at.

    ``inputs_layout`` (see :mod:`netsculpt.edits.inputs`) is written whenever the inputs have one, so
    models with structured inputs (a detector's list of images) replay on load, not only ``model(x)``.
    """
    step: dict[str, Any] = {"kind": "prune", "plan": plan, "input_shapes": [list(s) for s in input_shapes]}
    if inputs_layout is not None:
        step["inputs"] = inputs_layout
    append_step(model, step)
