"""Accuracy predictors for width search: a GCN over the traced layer graph and an MLP baseline.

A predictor learns a candidate's held-out score from its widths, online from the candidates a search
has already paid to score, and screens new ones (``--predictor gcn``) so only the promising get
scored; NAO (``search --method nao``) optimises widths in a learnt continuous embedding. Predictors are
saved as safetensors + JSON with a fingerprint of the model and search space they are valid for.
"""

from __future__ import annotations

from netsculpt.predictors.features import FEATURES, GraphFeatures
from netsculpt.predictors.models import GCN, MLP, PREDICTORS
from netsculpt.predictors.predictor import Predictor, rank_quality
from netsculpt.predictors.screen import SCREENED_METHODS, Screener

__all__ = [
    "FEATURES",
    "GCN",
    "MLP",
    "PREDICTORS",
    "SCREENED_METHODS",
    "GraphFeatures",
    "Predictor",
    "Screener",
    "rank_quality",
]
