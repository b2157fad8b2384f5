"""What ultralytics itself reads from a YOLO split, in a process of its own: importing ultralytics patches
PIL and torch process-wide, and it is AGPL-3.0 (tests only; netsculpt's code never imports it).

    python -m tests.data._ultralytics_labels CLASSES ENTRY...   # prints one JSON object

ENTRY is an image folder or a .txt list, as a dataset YAML's ``train:`` names them. The answer lists the
images ultralytics finds (``get_img_files``) and, per image, its label file, its (H, W) after EXIF and
its ``[class, cx, cy, w, h]`` rows (``verify_image_label``: the checks ultralytics trains behind).
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

        classes, entries = int(argv[0]), argv[1:]
        images = BaseDataset.get_img_files(SimpleNamespace(prefix="", fraction=1.0), entries)
        read = {}
        for image in images:
            label = img2label_paths([image])[0]
            _, rows, shape, *_, msg = verify_image_label((image, label, "", False, classes, 0, 0, False))
            rows = None if rows is None else rows.tolist()
            read[image] = {"label": label, "shape": shape and list(shape), "rows": rows, "msg": msg}
    sys.stdout.write(json.dumps({"images": images, "read": read}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
