"""CHIP's channel independence: the definition (C + 1 SVDs per image) against the exact fast forms.

For each feature-map shape (channels C x positions HW, as in resnet20_cifar's three stages and a
ResNet-50-like 14x14 stage) it times, for a batch of post-ReLU maps:

- naive: ``||A||_* - ||A_c||_*`` with one batched SVD of the C masked copies (what the paper describes);
- eig: one Gram matrix, then batched ``eigvalsh`` of the C principal submatrices (C <= HW) or of the C
  rank-one downdates of ``A^T A`` (C > HW);
- integral (what netsculpt uses): one eigendecomposition, then the resolvent integral evaluated for all
  channels with two matrix products (``netsculpt.importance.chip``).

and reports the speed-up and the agreement with the naive scores: max abs difference relative to the
largest score, and the Spearman correlation of the channel rankings (averaged over images).

    PYTHONPATH=src python benchmarks/chip_speed.py [--images 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from _calibration import print_calibration
from scipy.stats import spearmanr

from netsculpt.importance.chip import nuclear_norm_drops, nuclear_norm_drops_eig, nuclear_norm_drops_naive

SHAPES = [(16, 1024), (32, 256), (64, 64), (256, 196)]  # resnet20_cifar stages at 32x32; a 14x14 stage


def _timed(fn, *args) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8, help="images per shape (naive cost grows fast)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print_calibration("start")
    gen = torch.Generator().manual_seed(0)
    print(f"\n{'C x HW':>10} {'naive s':>9} {'eig s':>8} {'integral s':>11} {'speed-up':>9} {'vs eig':>7} "
          f"{'max |diff| / max':>17} {'Spearman':>9}")  # fmt: skip
    worst = 0.0
    for c, hw in SHAPES:
        images = args.images if c * c * hw < 5e6 else max(1, args.images // 4)
        maps = torch.relu(torch.randn(images, c, hw, generator=gen, dtype=torch.float64))
        naive, t_naive = _timed(lambda m: torch.stack([nuclear_norm_drops_naive(a) for a in m]), maps)
        eig, t_eig = _timed(nuclear_norm_drops_eig, maps)
        fast, t_fast = _timed(nuclear_norm_drops, maps)
        scale = naive.abs().amax(-1, keepdim=True)
        diff = float(((fast - naive).abs() / scale).max())
        diff_eig = float(((eig - naive).abs() / scale).max())
        worst = max(worst, diff)
        rho = sum(spearmanr(f.numpy(), n.numpy())[0] for f, n in zip(fast, naive, strict=True)) / images
        print(
            f"{c:>4} x {hw:<4} {t_naive / images:>9.4f} {t_eig / images:>8.4f} {t_fast / images:>11.5f} "
            f"{t_naive / t_fast:>8.0f}x {t_eig / t_fast:>6.0f}x {diff:>17.1e} {rho:>9.6f}"
            f"   (eig max |diff| {diff_eig:.1e}; {images} images, times per image)",
            flush=True,
        )
    print_calibration("end")
    ok = worst <= 1e-6
    print(("PASS" if ok else "FAIL") + f": integral form within {worst:.1e} of the definition (bar 1e-6)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
