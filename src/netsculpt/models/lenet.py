"""LeNet-5 in the Caffe layout (conv 20 → conv 50 → fc 500), the MNIST baseline of the HRel paper.

The Caffe original has no nonlinearity after its convolutions; we put a ReLU after each one (it has no
parameters, so the count of 431,080 for 10 classes and 1 channel is unchanged) because activation-based
pruning criteria (HRank, HRel) score rectified feature maps.
"""

from __future__ import annotations

import torch
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.models.registry import register_model


class LeNet5(nn.Module):
    """Two 5x5 conv/pool stages and two fully connected layers.

    ``input_size`` is the side of the square input; it fixes the width of ``fc1``'s input
    (50 * 4 * 4 = 800 for the usual 28x28 MNIST digits).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28) -> None:
        super().__init__()
        side = ((input_size - 4) // 2 - 4) // 2  # two valid 5x5 convs, each followed by a 2x2 max-pool
        if side < 1:
            raise ConfigError(
                f"lenet5 needs input_size >= 16 (two 5x5 convs and two 2x2 pools), got {input_size}"
            )
        self.conv1 = nn.Conv2d(in_channels, 20, kernel_size=5)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(20, 50, kernel_size=5)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(50 * side * side, 500)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.relu3(self.fc1(self.flatten(x)))
        return self.fc2(x)


@register_model("lenet5", input_shape=(1, 28, 28), num_classes=10, in_channels=1)
def lenet5(num_classes: int, in_channels: int, input_size: int = 28) -> nn.Module:
    return LeNet5(num_classes=num_classes, in_channels=in_channels, input_size=input_size)
