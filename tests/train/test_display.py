"""The epoch progress line names a dense task's metric as the run summary does, in the same unit."""

from __future__ import annotations

from netsculpt.tasks import get_task
from netsculpt.train.display import epoch_status


def test_a_dense_epoch_line_reads_like_the_run_summary() -> None:
    # it read "test map 0.0018" while the final line said "test map 0.18%" and the summary "mAP@[.5:.95]"
    assert epoch_status(0.5, None, 0.0018, get_task("detection")).endswith("test mAP@[.5:.95] 0.18%")
    assert epoch_status(0.5, None, 0.25, get_task("segmentation")).endswith("test mIoU 25.00%")


def test_a_classification_epoch_line_is_unchanged() -> None:
    assert epoch_status(0.5, 0.9, 0.8, None) == "loss 0.5000 acc 90.00%  test acc 80.00%"
