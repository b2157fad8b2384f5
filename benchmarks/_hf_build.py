"""Tiny Hugging Face models for benchmarks/hf_sweep.py: which task class, a shrunk config, inputs.

The shrink is generic (attribute names, not per-model code), so a model type it cannot shrink into a
working model is a ``skip`` in the sweep, with transformers' own error as the reason.
"""

from __future__ import annotations

import inspect

import torch

# task mappings in order of preference: the first one that lists a model type gives its class
TASKS = (
    ("seq-cls", "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES"),
    ("img-cls", "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES"),
    ("sem-seg", "MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES"),
    ("detect", "MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES"),
    ("causal-lm", "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"),
    ("audio-cls", "MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES"),
    ("base", "MODEL_MAPPING_NAMES"),
)
WIDTH, FFN, HEADS, LAYERS = 32, 64, 2, 2
VOCAB, POSITIONS, IMAGE, PATCH = 128, 128, 32, 8
SEQ, DEC_SEQ, AUDIO = 16, 8, 4000
WIDTH_KEYS = {"hidden_size", "d_model", "n_embd", "embed_dim", "embedding_size", "word_embed_proj_dim"}
WIDTH_KEYS |= {"pooler_hidden_size"}
FFN_KEYS = {"intermediate_size", "ffn_dim", "encoder_ffn_dim", "decoder_ffn_dim", "d_ff", "n_inner"}
FFN_KEYS |= {"moe_intermediate_size", "shared_expert_intermediate_size", "decoder_intermediate_size"}
HEAD_KEYS = {"num_attention_heads", "n_head", "n_heads", "encoder_attention_heads", "decoder_attention_heads"}
LAYER_KEYS = {"num_hidden_layers", "num_layers", "n_layer", "n_layers", "encoder_layers", "decoder_layers"}
LAYER_KEYS |= {"num_encoder_layers", "num_decoder_layers"}
SMALL_KEYS = {"num_experts": 4, "n_routed_experts": 4, "num_local_experts": 4, "num_experts_per_tok": 2}
SMALL_KEYS |= {"num_conv_pos_embeddings": 16, "classifier_proj_size": 32, "projection_dim": WIDTH}
SMALL_KEYS |= {"max_source_positions": 32, "max_target_positions": 64, "window_size": 4, "d_kv": 16}
SMALL_KEYS |= {"decoder_hidden_size": WIDTH, "head_dim": WIDTH // HEADS, "num_labels": 3}


def model_types() -> list[tuple[str, str, str]]:
    """(model type, task, class name) for every type with a model, task classes first."""
    from transformers.models.auto import modeling_auto

    out: dict[str, tuple[str, str]] = {}
    for task, mapping in TASKS:
        for mtype, cls in getattr(modeling_auto, mapping).items():
            out.setdefault(mtype, (task, cls if isinstance(cls, str) else cls[0]))
    return [(m, t, c) for m, (t, c) in out.items()]


# the second try keeps the config's own image geometry: windowed attention (Swin) and fixed position
# tables often need the native image size, patch size and window
VARIANTS = (frozenset(), frozenset({"image_size", "patch_size", "window_size"}))


def _shrink(config, keep: frozenset = frozenset(), depth: int = 0) -> None:
    """Shrink one config in place (and its sub-configs): widths, depths, heads, vocabulary, images."""
    from transformers import PreTrainedConfig

    d = vars(config)
    old_layers = next(
        (d[k] for k in ("num_hidden_layers", "num_layers", "n_layer") if isinstance(d.get(k), int)), 0
    )
    heads = next((d[k] for k in HEAD_KEYS if isinstance(d.get(k), int)), None)
    for key, value in list(d.items()):
        if isinstance(value, PreTrainedConfig) and depth < 3:
            _shrink(value, keep, depth + 1)
        if isinstance(value, bool) or key.startswith("_") or key in keep:
            continue
        if isinstance(value, int):
            new = _int_value(key, value, d, heads)
            if new is not None:
                setattr(config, key, new)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, int) for v in value):
            new = _list_value(key, list(value), old_layers)
            if new is not None:
                setattr(config, key, type(value)(new))
        elif (
            isinstance(value, (list, tuple))
            and old_layers
            and len(value) == old_layers
            and key.endswith("types")
        ):
            setattr(config, key, type(value)(value[:LAYERS]))
    if "use_cache" in d:
        config.use_cache = False
    if depth == 0 and getattr(config, "pad_token_id", None) is None:
        config.pad_token_id = 0  # sequence classifiers pool at the last non-pad token of a batch
    encoder_decoder = depth == 0 and getattr(config, "is_encoder_decoder", False)
    if encoder_decoder and getattr(config, "decoder_start_token_id", None) is None:
        config.decoder_start_token_id = 0


def _int_value(key: str, value: int, d: dict, heads: int | None) -> int | None:
    if key in WIDTH_KEYS or (key == "dim" and "hidden_dim" in d):
        return WIDTH
    if key in FFN_KEYS or (key == "hidden_dim" and "dim" in d):
        return FFN
    if key in HEAD_KEYS or key == "num_heads":
        return HEADS
    if key == "num_key_value_heads":
        return 1 if heads and value < heads else HEADS
    if key in LAYER_KEYS:
        return LAYERS
    if key in SMALL_KEYS:
        return min(value, SMALL_KEYS[key]) if key != "head_dim" else SMALL_KEYS[key]
    if key == "vocab_size":
        return VOCAB
    if key == "max_position_embeddings":
        return min(value, POSITIONS) if value >= SEQ * 2 else value
    if key == "image_size":
        return IMAGE
    if key == "patch_size":
        return min(value, PATCH)
    if key.endswith("_token_id"):
        return value if value < VOCAB else (0 if key.startswith("pad") else 2)
    return None


def _list_value(key: str, value: list[int], old_layers: int) -> list[int] | None:
    n = len(value)
    if key in ("hidden_sizes", "embed_dims", "dims", "widths", "channels"):
        return [32 * 2**i for i in range(n)]  # GroupNorm(32, C) needs 32 channels (BiT)
    if key in ("depths", "num_layers", "layers"):
        return [1] * n
    if key in ("num_heads", "num_attention_heads"):
        return [HEADS] * n
    if key == "conv_dim":
        return [WIDTH] * n
    if key == "image_size":
        return [IMAGE] * n
    if key == "patch_size":
        return [min(v, PATCH) for v in value]
    if old_layers and n == old_layers and n > LAYERS:
        return value[:LAYERS]
    return None


def build(model_type: str, class_name: str, variant: int = 0, seed: int = 0) -> torch.nn.Module:
    """The task class from a shrunk default config, in eval mode, weights from ``seed``."""
    import transformers

    config = transformers.AutoConfig.for_model(model_type)
    _shrink(config, VARIANTS[variant])
    torch.manual_seed(seed)
    cls = getattr(transformers, class_name)
    return cls._from_config(config).eval()


def _image_size(config) -> int:
    for c in (config, getattr(config, "vision_config", None), getattr(config, "backbone_config", None)):
        size = getattr(c, "image_size", None)
        if size:
            return size if isinstance(size, int) else size[-1]
    return 64


def _text_config(config):
    return getattr(config, "text_config", None) or getattr(config, "decoder", None) or config


def inputs(model: torch.nn.Module) -> tuple[tuple, dict[str, torch.Tensor]]:
    """``forward``'s positional arguments (None where not given) for the model's modality, and the dict."""
    config = model.config
    g = torch.Generator().manual_seed(0)
    vocab = getattr(_text_config(config), "vocab_size", None) or VOCAB
    main = getattr(model, "main_input_name", "input_ids")
    params = list(inspect.signature(model.forward).parameters)
    given: dict[str, torch.Tensor] = {}
    multimodal = hasattr(config, "vision_config") and hasattr(config, "text_config")
    if main == "input_ids" or (multimodal and "input_ids" in params):
        given["input_ids"] = torch.randint(3, vocab, (2, SEQ), generator=g)
        eos = getattr(_text_config(config), "eos_token_id", None)
        if isinstance(eos, int) and eos < vocab:  # sequence classifiers of encoder-decoders pool at </s>
            given["input_ids"][:, -1] = eos
    if main == "pixel_values" or (multimodal and "pixel_values" in params):
        size, ch = _image_size(config), getattr(config, "num_channels", 3)
        given["pixel_values"] = torch.randn(2, ch, size, size, generator=g)
    if main == "input_values":
        given["input_values"] = torch.randn(2, AUDIO, generator=g)
    if main == "input_features":
        given["input_features"] = torch.randn(2, *_feature_shape(config), generator=g)
    seq_cls = type(model).__name__.endswith("ForSequenceClassification")  # decoder ids come from input ids
    if getattr(config, "is_encoder_decoder", False) and "decoder_input_ids" in params and not seq_cls:
        given["decoder_input_ids"] = torch.randint(3, vocab, (2, DEC_SEQ), generator=g)
    if not given:
        raise ValueError(f"no input recipe for main_input_name {main!r}")
    last = max(params.index(k) for k in given)
    args = tuple(given.get(p) for p in params[: last + 1])
    return args, given


def _feature_shape(config) -> tuple[int, int]:
    """Whisper reads (mel bins, 2 x source positions); Speech2Text-like models (frames, features)."""
    if getattr(config, "num_mel_bins", None) and getattr(config, "max_source_positions", None):
        return config.num_mel_bins, 2 * config.max_source_positions
    feats = getattr(config, "input_feat_per_channel", None) or getattr(config, "feature_size", None) or 80
    return 64, feats * getattr(config, "input_channels", 1)


def first_tensor(out) -> torch.Tensor | None:
    """The ModelOutput's first tensor (logits, or the last hidden state of a base model)."""
    if isinstance(out, torch.Tensor):
        return out
    if not isinstance(out, (dict, list, tuple)):
        return None
    items = out.values() if isinstance(out, dict) else out
    for item in items:
        if item is None:
            continue
        found = first_tensor(item) if not isinstance(item, torch.Tensor) else item
        if found is not None:
            return found
    return None
