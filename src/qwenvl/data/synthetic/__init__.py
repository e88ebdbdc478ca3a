"""The synthetic multi-task world: coloured shapes and short texts with exact ground truth.

`SyntheticWorld` is a Dataset of Samples for every task (caption, vqa, grounding, grounded
caption, ocr, multi-image, dialog, text), deterministic per (seed, split, index); `export`
writes it to public dataset formats on disk.
"""

from qwenvl.data.synthetic.scene import Scene, Shape, Text, sample_scene
from qwenvl.data.synthetic.world import SPLITS, SyntheticWorld

__all__ = ["SPLITS", "Scene", "Shape", "SyntheticWorld", "Text", "sample_scene"]
