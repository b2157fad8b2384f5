"""What ultralytics itself reads from a YOLO split, in a process of its own: importing ultralytics patches
PIL and torch process-wide, and it is AGPL-3.0 (tests only; netsculpt's code never imports it).

    python -m tests.data._ultralytics_labels CLASSES[:K,D] ENTRY... [-- CLASSES[:K,D] ENTRY...]

prints one JSON list, an answer per job (several jobs share one import of ultralytics, which takes
seconds). ENTRY is an image folder or a .txt list, as a dataset YAML's ``train:`` names them; ``:K,D``
is a pose dataset's ``kpt_shape``. An answer lists the images ultralytics finds (``get_img_files``) and,
per image, its label file, its (H, W) after EXIF, its ``[class, cx, cy, w, h]`` rows and, for a pose
job, its ``(N, K, 3)`` keypoints (``verify_image_label``: the checks ultralytics trains behind).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from types import SimpleNamespace


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="netsculpt-yolo-") as settings:
        os.environ["YOLO_CONFIG_DIR"] = settings  # ultralytics writes its settings here, not in $HOME
        os.environ["YOLO_OFFLINE"] = "1"
        from ultralytics.data.base import BaseDataset
        from ultralytics.data.utils import img2label_paths, verify_image_label

        answers, jobs = [], " ".join(argv).split(" -- ")
        for job in jobs:
            head, *entries = job.split()
            classes, _, kpt = head.partition(":")
            nkpt, ndim = (int(v) for v in kpt.split(",")) if kpt else (0, 0)
            images = BaseDataset.get_img_files(SimpleNamespace(prefix="", fraction=1.0), entries)
            read = {}
            for image in images:
                label = img2label_paths([image])[0]
                args = (image, label, "", bool(kpt), int(classes), nkpt, ndim, False)
                _, rows, shape, _, points, *_, msg = verify_image_label(args)
                read[image] = {"label": label, "shape": shape and list(shape), "msg": msg,
                               "rows": None if rows is None else rows.tolist(),
                               "keypoints": None if points is None else points.tolist()}  # fmt: skip
            answers.append({"images": images, "read": read})
    sys.stdout.write(json.dumps(answers) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
