"""Read ``model.safetensors`` for a rebuilt model: names and shapes checked before any tensor is read."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from netsculpt.errors import CheckpointError
from netsculpt.weights.packed_check import DIGEST_KEY
from netsculpt.weights.sparse_store import file_digest


def _plain(model: nn.Module, path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError, safe_open

    reference = model.state_dict()
    try:
        with safe_open(str(path), framework="pt") as f:
            names = list(f.keys())
            for name in names:
                if name not in reference:
                    raise CheckpointError(f"{str(path)!r} holds {name!r}, which the rebuilt model lacks")
                shape = list(f.get_slice(name).get_shape())
                if shape != list(reference[name].shape):
                    raise CheckpointError(
                        f"{str(path)!r}: {name!r} has shape {shape}, the rebuilt model's has "
                        f"{list(reference[name].shape)}"
                    )
            missing = [name for name in reference if name not in set(names)]
            if missing:
                raise CheckpointError(f"{str(path)!r} lacks {missing[0]!r} (and {len(missing) - 1} more)")
            state = {name: f.get_tensor(name) for name in names}
            expected = (f.metadata() or {}).get(DIGEST_KEY)
    except (SafetensorError, OSError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"cannot read {str(path)!r} as safetensors: {exc}") from None
    # files written before 2026-12-06, and plain safetensors from elsewhere, carry no digest
    if expected is not None and expected != file_digest(state):
        raise CheckpointError(
            f"{str(path)!r} is corrupt: its tensors do not match the checksum written with them; "
            "restore the file from a good copy"
        )
    return state


def read_weights(model: nn.Module, path: str | Path) -> dict[str, Tensor]:
    """The state dict for ``model`` from a plain or packed (palettized) netsculpt weights file."""
    from netsculpt.weights.storage import unpack_state

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{str(path)!r} is missing: a saved model folder holds its weights there")
    state = unpack_state(model, path)  # None: a plain state dict
    return _plain(model, path) if state is None else state
