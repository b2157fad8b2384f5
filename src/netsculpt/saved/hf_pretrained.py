"""A transformers config that describes a pruned Hugging Face model, where one number per width can.

A pruned model keeps the config it was built with (``intermediate_size``, ``num_attention_heads`` of the
unpruned model), so ``save_pretrained`` writes a config that ``from_pretrained`` rebuilds the *unpruned*
architecture from, and the weights then fail to load with transformers' size-mismatch error.
``ns.save`` / ``ns.load`` are the way back for any pruned model (they replay the prune). When every layer
ended with the same widths, :func:`to_pretrained_config` gives a config transformers itself rebuilds the
pruned model from; it is checked by building that config on the meta device and comparing every
state-dict shape, so it never returns a config that would not load.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.spec import state_shapes

# the layer whose output width is the feed-forward width, and the config fields that hold it
_FFN_LAYERS = ("intermediate.dense", "mlp.up_proj", "mlp.c_fc", "ffn.lin1", "mlp.fc1", "DenseReluDense.wi")
_FFN_FIELDS = ("intermediate_size", "n_inner", "ffn_dim", "d_ff", "hidden_dim")  # hidden_dim: DistilBERT
_QUERY_LAYERS = ("attention.self.query", "self_attn.q_proj", "attention.q_lin", "attn.q_proj")
_KEY_LAYERS = ("attention.self.key", "self_attn.k_proj", "attention.k_lin", "attn.k_proj")
_WIDTHS = {  # the name a refusal uses, the config fields in order of preference
    "feed-forward width": _FFN_FIELDS,
    "attention heads": ("num_attention_heads",),
    "key/value heads": ("num_key_value_heads",),
}


def _out_width(module: nn.Module) -> int | None:
    """A projection's output width: ``Linear`` stores (out, in), GPT-2's ``Conv1D`` (in, out)."""
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        return None
    return int(weight.shape[1] if type(module).__name__ == "Conv1D" else weight.shape[0])


def _head_dim(config: Any) -> int | None:
    size = getattr(config, "head_dim", None)
    if isinstance(size, int) and size > 0:
        return size
    hidden, heads = getattr(config, "hidden_size", None), getattr(config, "num_attention_heads", None)
    return hidden // heads if isinstance(hidden, int) and isinstance(heads, int) and heads > 0 else None


def layer_widths(model: nn.Module) -> dict[str, dict[str, int]]:
    """Each layer's feed-forward width and head counts, read off the weights (the config is stale)."""
    head_dim = _head_dim(model.config)
    widths: dict[str, dict[str, int]] = {name: {} for name in _WIDTHS}
    for name, module in model.named_modules():
        width = _out_width(module)
        if width is None:
            continue
        if name.endswith(_FFN_LAYERS):
            widths["feed-forward width"][name] = width
        elif head_dim and name.endswith(_QUERY_LAYERS):
            widths["attention heads"][name] = width // head_dim
        elif head_dim and name.endswith(_KEY_LAYERS):
            widths["key/value heads"][name] = width // head_dim
    return widths


def _embedding_width(model: nn.Module) -> int | None:
    try:
        embeddings = model.get_input_embeddings()
    except (AttributeError, NotImplementedError):  # DETR, CLIP: no single input embedding
        return None
    return int(embeddings.weight.shape[1]) if isinstance(embeddings, nn.Embedding) else None


def _first_difference(built: dict[str, list[int]], mine: dict[str, list[int]]) -> str:
    for key, shape in mine.items():
        if built.get(key) != shape:
            return f"{key} is {shape} in the pruned model, {built.get(key, 'missing')} in a build of it"
    extra = next(iter(built.keys() - mine.keys()))
    return f"a build of that config has {extra}, which the pruned model lacks"


def to_pretrained_config(model: nn.Module) -> Any:
    """A copy of ``model.config`` that transformers rebuilds ``model``'s pruned architecture from.

    ``small.save_pretrained(d)`` then ``Cls.from_pretrained(d, config=to_pretrained_config(small))`` (or
    ``to_pretrained_config(small).save_pretrained(d)`` to write it as ``config.json``). Refused, naming
    the widths, when layers ended with different widths (a config holds one number per width) or the
    class cannot express the change (BERT derives its head size from ``hidden_size /
    num_attention_heads``, so fewer heads of the same size have no config): use ``ns.save`` / ``ns.load``.
    """
    from netsculpt.saved.huggingface import is_hf_model

    if not is_hf_model(model):
        raise ConfigError(
            f"to_pretrained_config takes a Hugging Face transformers model, got {type(model).__name__}"
        )
    config = copy.deepcopy(model.config)
    cls = type(model).__name__
    changed = []
    for what, per_layer in layer_widths(model).items():
        values = sorted(set(per_layer.values()))
        if len(values) > 1:
            listed = ", ".join(f"{layer}: {width}" for layer, width in per_layer.items())
            raise ConfigError(
                f"cannot describe this pruned {cls} with a transformers config: its layers differ in "
                f"{what} ({listed}) and a config holds one number for all of them. Save it with ns.save "
                "and load it with ns.load(folder), which replays the prune"
            )
        field = next((f for f in _WIDTHS[what] if getattr(config, f, None) is not None), None)
        if field is None and what == "feed-forward width":  # GPT-2's n_inner: None means 4 x n_embd
            field = next((f for f in _FFN_FIELDS if hasattr(config, f)), None)
        if values and field is not None and getattr(config, field) != values[0]:
            changed.append(f"{field} {getattr(config, field)} -> {values[0]}")
            if what == "attention heads":  # the head size stays, only the count falls: Llama and Qwen2
                config.head_dim = _head_dim(model.config)  # read head_dim (Qwen2's config has no field)
            setattr(config, field, values[0])
    hidden = _embedding_width(model)
    if hidden is not None and getattr(config, "hidden_size", hidden) != hidden:  # allow_inexact
        changed.append(f"hidden_size {config.hidden_size} -> {hidden}")
        config.hidden_size = hidden
    try:
        with torch.device("meta"), torch.random.fork_rng(devices=[]):
            built = state_shapes(type(model)(config))
    except Exception as exc:  # transformers refuses the combination (heads not dividing the width ...)
        built, failure = None, f"transformers could not build it ({type(exc).__name__}: {str(exc)[:200]})"
    mine = state_shapes(model)
    if built != mine:
        why = failure if built is None else _first_difference(built, mine)
        heads = any(c.startswith("num_attention_heads") for c in changed)
        hint = (
            f"{cls} may size a head as hidden_size / num_attention_heads (BERT does; it reads no head_dim), "
            "so no config has fewer heads of the same size"
            if heads
            else f"{cls}'s config has no field for that width, or derives it from other fields"
        )
        raise ConfigError(
            f"cannot describe this pruned {cls} with a transformers config: with "
            f"{', '.join(changed) or 'the config unchanged'}, {why}: {hint}. Save it with ns.save and load "
            "it with ns.load(folder), which replays the prune"
        )
    return config


def edited_note(model: nn.Module) -> dict[str, str]:
    """What ``ns.save`` writes beside an edited Hugging Face model (``extra["huggingface"]``): its config is
    the unpruned model's, so ``from_pretrained`` cannot rebuild it; ``ns.load`` can, and whether
    :func:`to_pretrained_config` can describe it (or why not)."""
    note = {
        "config": "the saved base config describes the unedited (unpruned) model; from_pretrained would "
        "rebuild that one and fail to load these weights",
        "load_with": "netsculpt.load(folder)",
    }
    try:
        to_pretrained_config(model)
    except Exception as exc:  # a note must not stop the save; ConfigError says why, anything else what
        note["to_pretrained_config"] = f"not possible: {exc if isinstance(exc, ConfigError) else repr(exc)}"
    else:
        note["to_pretrained_config"] = (
            "netsculpt.saved.huggingface.to_pretrained_config(model) on the loaded model gives a config "
            "transformers rebuilds it from (save_pretrained, then from_pretrained(..., config=...))"
        )
    return note
