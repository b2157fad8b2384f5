"""Tasks: what to minimise, how to score and what to distil, for more than image classification."""

from netsculpt.tasks import classification, detection, language_model, segmentation  # noqa: F401  (register)
from netsculpt.tasks.base import TASKS, Task, get_task, list_tasks, move, register_task
from netsculpt.tasks.metrics import DetectionMAP, SegmentationIoU

__all__ = [
    "TASKS",
    "DetectionMAP",
    "SegmentationIoU",
    "Task",
    "get_task",
    "list_tasks",
    "move",
    "register_task",
]
