"""Models that are not 2-D image CNNs: 1-D audio / time-series / text nets, recurrent and transformer text
classifiers, a 3-D UNet, torchvision's video classifiers and RAFT optical flow (docs/engine.md,
"Sequence, video and volume models")."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.video.mvit import MSBlockConfig, MViT

import netsculpt as ns
from netsculpt.graph import trace
from netsculpt.measure import count_macs
from netsculpt.surgery.verify import pruning_error, random_plan
from tests.coverage._check import check_prunes_exactly, make_nontrivial_
from tests.coverage._sequence_nets import NETS

# 50 % per group: a layer between two pruned groups keeps ~1/4 of its MACs, one reading the (pinned)
# input ~1/2. M5's first conv (80 taps over the one-channel waveform) holds most of its MACs, so ~1/2;
# the transformer keeps its residual width (attention scaling and LayerNorm pin it in exact mode), so only
# its feed-forward layers shrink. Measured: 0.25-0.26, M5 0.45, transformer 0.79.
MACS_BOUND = {"m5_audio": 0.55, "text_transformer": 0.95}


@pytest.mark.parametrize("name", list(NETS))
def test_sequence_and_volume_nets_prune_exactly(name: str) -> None:
    cls, kwargs, x = NETS[name]
    torch.manual_seed(0)
    result = check_prunes_exactly(cls(**kwargs), x)
    assert result["macs_ratio"] < MACS_BOUND.get(name, 0.35), result


def test_text_transformer_says_why_its_width_stays() -> None:
    cls, kwargs, x = NETS["text_transformer"]
    graph = trace(cls(**kwargs).eval(), x)
    width = next(g for g in graph.groups if g.id == "emb:in")
    # nn.MultiheadAttention(need_weights=False) ties its input width to its heads, one channel a head;
    # LayerNorm is what keeps them (until 2026-12-07 the attention scaling pinned head-dim positions)
    assert width.size == 2 and width.n_prunable == 0 and "normalises over" in width.reasons[0]


@pytest.mark.parametrize("name", ["text_cnn", "lstm", "unet3d"])  # token ids, a recurrence, 3-D + transposed
def test_the_pipeline_a_user_runs(name: str, tmp_path: Path) -> None:
    """prune -> save -> load onto a fresh instance (its class is the user's: consent by model=) -> measure."""
    cls, kwargs, x = NETS[name]
    torch.manual_seed(0)
    model = make_nontrivial_(cls(**kwargs))
    small = ns.prune(model, x, ratio=0.5)
    ns.save(small, tmp_path / "m")
    loaded = ns.load(tmp_path / "m", model=cls(**kwargs)).eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), small(x))
    metrics = ns.measure(loaded, x, runs=2, warmup=1)
    assert metrics.macs == count_macs(small, x)[0] < count_macs(model, x)[0]
    assert metrics.latency_ms is not None and metrics.latency_ms > 0


def _small_mvit() -> nn.Module:
    """mvit_v2_s's block design (pooling attention, relative positions, residual pooling) on 4x32x32 clips:
    torchvision's builder fixes 16x224x224 (~64 GMACs), and passing spatial_size= there is a TypeError."""

    def block(heads: int, cin: int, cout: int, stride_q: int, stride_kv: int) -> MSBlockConfig:
        q, kv = [1, stride_q, stride_q], [1, stride_kv, stride_kv]
        return MSBlockConfig(heads, cin, cout, [3, 3, 3], [3, 3, 3], q, kv)

    blocks = [block(1, 96, 96, 1, 8), block(1, 96, 192, 2, 4), block(2, 192, 192, 1, 4)]
    return MViT((32, 32), 4, blocks, residual_pool=True, residual_with_cls_embed=False, rel_pos_embed=True,
                proj_after_attn=True, num_classes=10)  # fmt: skip


def _s3d_any_size() -> nn.Module:
    """S3D's head averages a fixed 2x7x7 window (inputs of at least 14x224x224, 16 GMACs); the trunk is
    the same with an adaptive average, which takes small clips."""
    model = torchvision.models.get_model("s3d", weights=None, num_classes=10)
    model.avgpool = nn.AdaptiveAvgPool3d(1)
    return model


def _video(name: str) -> nn.Module:
    return torchvision.models.get_model(name, weights=None, num_classes=10)


VIDEO = {  # smallest clips each accepts (batch, channels, frames, height, width)
    "r3d_18": (lambda: _video("r3d_18"), (1, 3, 2, 16, 16), 0.35),
    "mc3_18": (lambda: _video("mc3_18"), (1, 3, 2, 16, 16), 0.35),
    "r2plus1d_18": (lambda: _video("r2plus1d_18"), (1, 3, 2, 16, 16), 0.35),
    "s3d (adaptive head)": (_s3d_any_size, (1, 3, 8, 32, 32), 0.35),
    "swin3d_t": (lambda: _video("swin3d_t"), (1, 3, 2, 16, 16), 0.85),  # attention and LayerNorm widths stay
    "mvit_v2_s design": (_small_mvit, (1, 3, 4, 32, 32), 0.85),  # as for swin3d_t
}


@pytest.mark.parametrize("name", list(VIDEO))
def test_torchvision_video_models_prune_exactly(name: str) -> None:
    build, shape, bound = VIDEO[name]
    torch.manual_seed(0)
    result = check_prunes_exactly(build(), torch.randn(shape))
    assert result["macs_ratio"] < bound, result


@pytest.mark.slow  # 16 GMACs per forward at the smallest clip torchvision's S3D head accepts
def test_s3d_as_built_prunes_exactly() -> None:
    torch.manual_seed(0)
    assert check_prunes_exactly(_video("s3d"), torch.randn(1, 3, 14, 224, 224))["macs_ratio"] < 0.35


def test_raft_optical_flow_prunes_its_context_and_update_convs_exactly() -> None:
    """Two frames in, a list of flow refinements out. The feature encoder's output width (the correlation
    volume divides by its square root) and the flow head's 2 channels are pinned, each with its reason;
    the rest prunes exactly, the instance-normalised feature encoder's inner widths included."""
    torch.manual_seed(0)
    model = make_nontrivial_(torchvision.models.optical_flow.raft_small(weights=None))
    frames = (torch.randn(1, 3, 128, 128), torch.randn(1, 3, 128, 128), 2)  # 2 flow updates: cheap
    graph = trace(model, frames)
    plan = random_plan(graph, 0.5, seed=0)
    assert any(k.startswith("context_encoder") for k in plan.keep)
    assert any(k.startswith("feature_encoder.layer") for k in plan.keep)
    assert any(k.startswith("update_block") for k in plan.keep)
    assert all(g.reasons for g in graph.groups if not g.n_prunable)
    assert pruning_error(model, graph, plan, frames) <= 1e-4
