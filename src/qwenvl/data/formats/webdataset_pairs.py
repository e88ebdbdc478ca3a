"""WebDataset tar shards of image-text pairs (stage-1 pretraining) -> streamed `caption` Samples.

A shard holds files grouped by key: `0001.jpg` + `0001.txt` (or `0001.json` with a "caption").
Shards are split across nodes (`wds.split_by_node`, from the torch.distributed rank or the
RANK/WORLD_SIZE variables) and then across DataLoader workers (`wds.split_by_worker`), so every
sample is read once per epoch; give the loader at least nodes x workers shards, and equally many
to each node, or some ranks run dry first. Images are decoded here, under the pixel limit, and
returned as RGB PIL images (a shard member has no path to return).

Unlike the map-style loaders, bad samples are found while streaming: `stats` counts those seen
in *this* process (each DataLoader worker process keeps its own counts). Each Sample's
`meta["stream_position"]` says where the stream stands after it, so that a resumed run starts each
worker there (`qwenvl.data.stream_resume`) instead of decoding its way back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import webdataset as wds
from torch.utils.data import IterableDataset
from webdataset.shardlists import expand_urls

from qwenvl.data import templates
from qwenvl.data.formats.base import DEFAULT_MAX_PIXELS, DataError, ErrorPolicy, ImageProblem, read_image
from qwenvl.data.sample import Message, Sample
from qwenvl.data.stream_resume import StreamResume
from qwenvl.tokenizer import escape

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


class WebDatasetPairs(IterableDataset):
    """Stream caption Samples from local shards `root / annotation_file`, e.g.
    `annotation_file="laion-{000000..000099}.tar"` (webdataset's syntax: braces expand, `::`
    joins patterns). Relative shard paths start at `root`. `split` is accepted
    for a uniform signature and unused: pick a split by its shards."""

    name = "webdataset_pairs"

    def __init__(
        self,
        root,
        annotation_file,
        split=None,
        on_error="skip",
        lang="en",
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        image_keys=IMAGE_EXTENSIONS,
    ):
        super().__init__()
        self.root, self.split, self.lang = Path(root), split, lang
        self.max_pixels, self.image_keys = int(max_pixels), tuple(image_keys)
        self.policy = ErrorPolicy(on_error)
        self._resume: StreamResume | None = None  # where the next pass starts (resume_at)
        templates.prompt("caption", lang)  # an unknown language fails here
        # Local files only, as absolute paths: webdataset would run a "pipe:..." name as a shell command.
        self.shards = [str(self.root.resolve() / p) for p in expand_urls(str(annotation_file))]
        missing = [s for s in self.shards if not Path(s).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} of {len(self.shards)} shards do not exist, e.g. {missing[0]}; "
                "check root and the annotation_file pattern"
            )

    @property
    def stats(self) -> dict[str, int]:
        """Counts in this process: samples, skipped, skipped/<reason>."""
        return dict(self.policy.stats)

    def resume_at(self, resume: StreamResume | None) -> None:
        """Start the next pass where `resume` says each worker role stopped (None: at the start)."""
        self._resume = resume

    def _role_shards(self, role: int, workers: int) -> list[str]:
        """The shards worker role `role` of `workers` reads on this rank: split across nodes, then
        across roles, as wds.split_by_node and split_by_worker would."""
        rank, world, _, _ = wds.utils.pytorch_worker_info()
        return self.shards[rank::world][role::workers]

    def moved_shards(self, resume: StreamResume) -> str | None:
        """What is not where `resume` says (a shard list changed since it was saved), or None."""
        for role, (shard, _, name) in sorted(resume.positions.items()):
            shards = self._role_shards(role, resume.workers)
            here = Path(shards[shard]).name if shard < len(shards) else None
            if here != name:
                return f"worker role {role}'s shard {shard} was {name} and is now {here or 'gone'}"
        return None

    def __iter__(self) -> Iterator[Sample]:
        # Shards split across nodes, then across worker roles, as wds.split_by_node and
        # split_by_worker would; a role is a worker's place in the loader's round, rotated on a
        # resume so that the first batch comes from the role whose turn it was (stream_resume).
        resume, self._resume = self._resume, None  # the first pass after a resume only
        _, _, worker, workers = wds.utils.pytorch_worker_info()
        role = resume.role(worker) if resume else worker
        shards = self._role_shards(role, workers)
        first, skip, _ = resume.positions.get(role, (0, 0, "")) if resume else (0, 0, "")
        for s in range(first, len(shards)):
            pipeline = wds.DataPipeline(
                wds.SimpleShardList([shards[s]]), wds.tarfile_to_samples(handler=self._shard_error)
            )
            for i, raw in enumerate(pipeline):
                if s == first and i < skip:
                    continue  # trained on before the interruption: read past, never decoded
                try:
                    sample = self.build(raw)
                except DataError as e:
                    self.policy.handle(e)
                    continue
                self.policy.stats["samples"] += 1
                # where the next one is; the shard's name checks a resume against a changed list
                sample.meta["stream_position"] = (role, workers, s, i + 1, Path(shards[s]).name)
                yield sample

    def _shard_error(self, exn: Exception) -> bool:
        """webdataset's handler for unreadable shards or members: True means go on."""
        self.policy.handle(
            DataError(
                f"unreadable shard data ({exn}); re-create or drop the shard", file=None, reason="bad_shard"
            )
        )
        return True

    def build(self, raw: dict[str, Any]) -> Sample:
        """One grouped shard member dict -> a caption Sample (decoded image)."""
        key, source = raw.get("__key__"), raw.get("__url__")

        def bad(reason: str, detail: str) -> DataError:
            return DataError(
                f"{source}: sample {key}: {detail}; fix or drop the sample",
                file=source,
                record=key,
                reason=reason,
            )

        ext = next((e for e in self.image_keys if e in raw), None)
        if ext is None:
            raise bad(
                "missing_field", f"no image member (.{'/.'.join(self.image_keys)}); members: {sorted(raw)}"
            )
        caption = self._caption(raw, bad)
        try:
            size, image = read_image(raw[ext], self.max_pixels, name=f"{key}.{ext}")
        except ImageProblem as p:
            raise bad(p.reason, p.detail) from None
        return Sample(
            task="caption",
            messages=[
                Message("user", templates.prompt("caption", self.lang), num_images=1),
                Message("assistant", escape(caption)),
            ],
            images=[image],
            answers=[caption],
            lang=self.lang,
            id=f"{self.name}/{key}",
            meta={"source": source, "record": key, "image_size": size},
        )

    @staticmethod
    def _caption(raw: dict[str, Any], bad) -> str:
        try:
            if "txt" in raw:
                caption = raw["txt"].decode("utf-8")
            elif "json" in raw:
                caption = json.loads(raw["json"]).get("caption")
            else:
                raise bad(
                    "missing_field", f"no caption (.txt, or .json with 'caption'); members: {sorted(raw)}"
                )
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as e:
            raise bad("bad_value", f"caption cannot be read ({e})") from None
        if not isinstance(caption, str) or not caption.strip():
            raise bad("bad_value", f"caption is empty or not a string: {caption!r:.80}")
        return caption.strip()
