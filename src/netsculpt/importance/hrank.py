"""HRank (Lin et al., CVPR 2020): channels whose feature maps have high average rank carry more information.

Each channel's map for one image is an H x W matrix; its rank is averaged over calibration images (and
over the group's activation sites: one per block for a residual stage). Ranks come from batched singular
values with torch's default tolerance (``max(H, W) * eps * largest singular value``), computed for all
channels and images of a batch at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from netsculpt.errors import NetsculptWarning, warn_user
from netsculpt.graph.groups import ChannelGroup
from netsculpt.importance.base import register_criterion
from netsculpt.importance.feature_maps import FeatureMapCriterion
from netsculpt.importance.site_choice import as_matrices
from netsculpt.importance.sites import Site


def map_ranks(x: torch.Tensor) -> torch.Tensor:
    """(N, C, *rest) feature maps -> (N, C) matrix ranks (a 1-D map is one row: rank 0 or 1)."""
    return torch.linalg.matrix_rank(as_matrices(x.float()))


@register_criterion("hrank")
@dataclass
class HRank(FeatureMapCriterion):
    """Average rank of each channel's post-activation feature maps."""

    def observe(self, group: ChannelGroup, site: Site, x: torch.Tensor, labels: torch.Tensor | None) -> None:
        if x.dim() <= 3 and group.id not in self.sums:  # first batch of this group, (N, C) or (N, C, L)
            warn_user(
                f"hrank ranks each channel's 2-D feature map, and group {group.id!r}'s maps are 1-D (audio, "
                "text, time series: every rank is 0 or 1), so it only tells dead channels from live ones; "
                "criterion='chip', 'taylor' or 'l1' rank them",
                NetsculptWarning,
            )
        self.add(group, map_ranks(x).sum(0).double(), x.shape[0])
