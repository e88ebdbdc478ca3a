"""ObjectMapDataModule: pictures and their object maps for the `objects` stage (encoder pretraining)."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from qwenvl.data.sampler import ResumableSampler, resumable_loader
from qwenvl.data.synthetic.object_maps import SyntheticObjectMaps
from qwenvl.processor import QwenVLProcessor


class ObjectMapDataModule(L.LightningDataModule):
    """Batches {"pixel_values": [B, 3, S, S], "kind"/"colour"/"char": [B, patches, cells^2]}.

    Pictures come at the model's resolution through its processor; the sampler is the one the
    language stages use, so a killed run resumes at the same picture.
    """

    def __init__(
        self,
        processor: QwenVLProcessor,
        patch_size: int,
        cells: int = 4,
        seed: int = 0,
        batch_size: int = 8,
        num_workers: int = 0,
        train_size: int = 100_000,
        val_size: int = 64,
    ):
        super().__init__()
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        kw = dict(
            seed=seed,
            image_size=processor.image_size,
            patch_size=patch_size,
            cells=cells,
            transform=processor.transform,
        )
        self.train_set = SyntheticObjectMaps(split="train", size=train_size, **kw)
        self.val_set = SyntheticObjectMaps(split="val", size=val_size, **kw)
        self.train_sampler: ResumableSampler | None = None

    def train_dataloader(self) -> DataLoader:
        loader = resumable_loader(self.train_set, self.batch_size, self.num_workers, self.seed, shuffle=True)
        self.train_sampler = loader.sampler  # the training module fast-forwards it on resume
        return loader

    def val_dataloader(self) -> DataLoader:
        return resumable_loader(self.val_set, self.batch_size, self.num_workers, self.seed, shuffle=False)

    def skipped(self) -> dict[str, int]:
        return {}  # generated pictures: nothing to skip
