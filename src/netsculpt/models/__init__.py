"""The model zoo: CIFAR/MNIST baselines of the pruning literature, plus torchvision and timm by name.

```python
from netsculpt.models import create_model, model_input_shape
model = create_model("resnet56_cifar", num_classes=100)
x = torch.randn(model_input_shape("resnet56_cifar"))          # (1, 3, 32, 32)
vision = create_model("torchvision:resnet18", num_classes=10, in_channels=1)
```
"""

from netsculpt.models import (  # noqa: F401  (registers)
    dense,
    lenet,
    mobilenetv2_cifar,
    resnet_cifar,
    revnet_cifar,
    vgg_cifar,
)
from netsculpt.models.factory import create_model, model_input_shape
from netsculpt.models.lenet import LeNet5
from netsculpt.models.mobilenetv2_cifar import MobileNetV2Cifar
from netsculpt.models.registry import MODELS, ModelSpec, list_models, register_model
from netsculpt.models.resnet_cifar import ResNetCifar, ZeroPadShortcut
from netsculpt.models.reversible import ReversibleBlock, ReversibleSequence
from netsculpt.models.revnet_cifar import RevNetCifar
from netsculpt.models.vgg_cifar import VGGCifar

__all__ = [
    "MODELS",
    "LeNet5",
    "MobileNetV2Cifar",
    "ModelSpec",
    "ResNetCifar",
    "RevNetCifar",
    "ReversibleBlock",
    "ReversibleSequence",
    "VGGCifar",
    "ZeroPadShortcut",
    "create_model",
    "list_models",
    "model_input_shape",
    "register_model",
]
