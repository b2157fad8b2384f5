"""Fuzz cases for the dataset files netsculpt reads: MNIST's IDX (plain and gzip) and CIFAR-10's pickled
batches, seeded with small valid files and corrupted by the shared strategies of ``tests/_fuzz.py``, plus
headers that lie about dims and dtype, a gzip bomb and pickle attack payloads (reduce calls).
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st


def _idx_seed(folder: Path) -> bytes:
    images = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    return struct.pack(">I3I", 0x00000803, *images.shape) + images.tobytes()


@st.composite
def _lying_idx(draw: st.DrawFn, data: bytes) -> bytes:
    dims = draw(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4))
    dtype = draw(st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07, 0xFF]))
    return b"\0\0" + bytes([dtype, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + data[16:]


def _idx_cases(data: bytes) -> st.SearchStrategy:
    def case(blob_and_gz: tuple[bytes, bool]) -> Callable[[Path], Any]:
        blob, gz = blob_and_gz

        def write(folder: Path) -> Callable[[], Any]:
            from netsculpt.data.mnist import read_idx

            path = folder / ("x.idx.gz" if gz else "x.idx")
            path.write_bytes(gzip.compress(blob) if gz else blob)
            return lambda: read_idx(path)

        return write

    bomb = (b"\0\0\x08\x01" + struct.pack(">I", 2**31) + b"\0" * (1 << 20), True)
    from tests._fuzz import mutated_bytes

    blobs = st.one_of(_lying_idx(data), mutated_bytes(data))
    return st.one_of(st.just(bomb), st.tuples(blobs, st.booleans())).map(case)


class _Reduce:
    def __init__(self, fn: Any, args: tuple) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple:
        return self.fn, self.args


def _cifar_seed(folder: Path) -> bytes:
    batch = {b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [1, 2]}
    return pickle.dumps(batch, protocol=2)


def _cifar_cases(data: bytes) -> st.SearchStrategy:
    payloads = [
        pickle.dumps({b"data": _Reduce(os.system, ("touch PWNED",)), b"labels": [1]}),
        pickle.dumps(_Reduce(eval, ("__import__('os').system('touch PWNED')",))),
        pickle.dumps({b"data": _Reduce(getattr, (_Reduce(__import__, ("os",)), "system")), b"labels": []}),
        pickle.dumps({b"data": np.zeros((2, 5), dtype=np.float64), b"labels": [1, 2]}),
        pickle.dumps({b"labels": [1, 2]}),
    ]

    from tests._fuzz import mutated_bytes

    def case(blob: bytes) -> Callable[[Path], Any]:
        def write(folder: Path) -> Callable[[], Any]:
            from netsculpt.data.cifar10 import read_batch

            (folder / "data_batch_1").write_bytes(blob)
            return lambda: read_batch(folder / "data_batch_1")

        return write

    return st.one_of(st.sampled_from(payloads), mutated_bytes(data)).map(case)
