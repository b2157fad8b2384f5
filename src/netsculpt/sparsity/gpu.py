"""2:4 weights on an NVIDIA GPU: torch's semi-structured sparse kernels (cuSPARSELt / CUTLASS).

CPU runtimes run 2:4 weights as dense ones (no speed-up; measured in docs/sparsity.md). On a GPU of
compute capability 8.0 or newer (Ampere), ``torch.sparse.to_sparse_semi_structured`` keeps half the values
plus 2-bit metadata and its matmul skips the zeros. torch has no semi-structured convolution, so only
``nn.Linear`` layers are converted.

Without such a GPU nothing is converted and the model is left exactly as it was: its dense weights with
zeros compute the same outputs, only not faster. :class:`SemiStructuredResult` says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

MIN_CAPABILITY = (8, 0)
DTYPES = (torch.float16, torch.bfloat16)


@dataclass
class SemiStructuredResult:
    """``converted`` layers; ``skipped`` layer -> why; ``reason`` when the GPU path did not run at all."""

    converted: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    reason: str | None = None


def semi_structured_support(device: str | torch.device = "cuda") -> str | None:
    """None when ``device`` runs 2:4 sparse kernels, else why not (a sentence for the user)."""
    dev = torch.device(device)
    fallback = "; the model keeps its dense weights with zeros (same outputs, no speed-up)"
    if dev.type != "cuda":
        need = "2:4 kernels need an NVIDIA GPU (Ampere or newer)"
        return f"device {str(dev)!r} is not a CUDA GPU: {need}{fallback}"
    if not torch.cuda.is_available():
        return f"no CUDA GPU is available to this torch build{fallback}"
    capability = torch.cuda.get_device_capability(dev)
    if capability < MIN_CAPABILITY:
        return (
            f"{torch.cuda.get_device_name(dev)} has compute capability {capability[0]}.{capability[1]}; "
            f"2:4 sparse kernels need 8.0 (Ampere) or newer{fallback}"
        )
    return None


def is_two_four(weight: Tensor) -> bool:
    """Every group of 4 consecutive inputs of every output row holds at most 2 nonzeros."""
    if weight.dim() != 2 or weight.shape[1] % 4:
        return False
    groups = (weight.detach() != 0).reshape(weight.shape[0], -1, 4).sum(dim=-1)
    return bool((groups <= 2).all())


def to_semi_structured_(
    model: nn.Module, device: str | torch.device = "cuda", dtype: torch.dtype = torch.float16
) -> SemiStructuredResult:
    """Move ``model`` to ``device`` in ``dtype`` and give every 2:4 ``nn.Linear`` a semi-structured weight.

    For inference only (the converted weights do not train). Without a capable GPU the model is not
    touched at all (not moved, not cast) and ``reason`` says why.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype} is not supported by 2:4 kernels here; use torch.float16 or bfloat16")
    result = SemiStructuredResult(reason=semi_structured_support(device))
    if result.reason is not None:
        return result
    from torch.sparse import to_sparse_semi_structured

    model.to(device=device, dtype=dtype)
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        weight = module.weight.detach()
        if not is_two_four(weight):
            result.skipped[name] = "weight is not 2:4 sparse (sparsify it with pattern='2:4' first)"
            continue
        try:
            sparse = to_sparse_semi_structured(weight)
        except (RuntimeError, ValueError) as exc:  # shape below the kernel's minimum tile, for one
            result.skipped[name] = f"torch refused it: {exc}"
            continue
        module.weight = nn.Parameter(sparse, requires_grad=False)
        result.converted.append(name)
    return result
