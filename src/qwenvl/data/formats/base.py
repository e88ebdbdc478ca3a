"""Shared machinery of the format loaders: confined paths, strict JSON, error policy, image checks.

A loader reads one annotation file once, at construction, and keeps the records that make good
Samples; `__getitem__` rebuilds the Sample of a kept record on demand (the raw JSON is smaller
than the Samples it turns into, which matters for DataLoader workers that share it).

Bad input is one of two kinds:

- *the file* is unusable (invalid JSON, wrong top-level layout): the loader fails at once,
  whatever the policy, since no record of it can be trusted;
- *a record* is unusable (missing field, bad box, missing or broken image, a path leaving the
  root): with `on_error="skip"` it is dropped, counted per reason in `stats` and logged with
  file, record and reason; with `on_error="raise"` a `DataError` carrying the same message is
  raised.

Image paths are returned as strings confined to the dataset root; pixels are loaded later, in
collation, by `load_sample_images` (or `FormatLoader.load_images`, which applies the policy).
How much of each image is checked at construction is chosen by `check_images`:
"none", "exists" (missing or zero-byte files; the default, one stat per image),
"header" (also corrupt files and images over `max_pixels`; records `image_size`) or
"decode" (also truncated files; reads every pixel once, slow on large datasets).
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any, ClassVar

from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from qwenvl.data import templates
from qwenvl.data.sample import Message, Sample
from qwenvl.tokenizer import escape

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own decompression-bomb limit, as in QwenVLProcessor
ON_ERROR = ("skip", "raise")
CHECK_IMAGES = ("none", "exists", "header", "decode")
_LOUD_SKIPS = 10  # per reason, skips are logged at WARNING this many times, then at DEBUG (no log floods)
_MISSING = object()


class DataError(ValueError):
    """Bad input data. `file`, `record` and `reason` say where and what; the message says what to do."""

    def __init__(self, message: str, *, file: Any = None, record: Any = None, reason: str = "bad_record"):
        super().__init__(message)
        self.file, self.record, self.reason = file, record, reason


def data_error(file: Any, record: Any, reason: str, detail: str, hint: str = "") -> DataError:
    """A DataError whose message reads `file: record N: detail; hint`."""
    where = str(file) if file is not None else "<unknown file>"
    if record is not None:
        where += f": record {record}"
    message = f"{where}: {detail}" + (f"; {hint}" if hint else "")
    return DataError(message, file=file, record=record, reason=reason)


# -- paths ------------------------------------------------------------------------------------


def safe_path(root: str | Path, relative: str, *, file: Any = None, record: Any = None) -> Path:
    """`root / relative`, resolved, refusing any path that would leave `root`.

    Paths in annotation files come from data and are untrusted: absolute paths, `..` parts and
    symlinks that resolve outside the root are refused with a DataError (a ValueError) that names
    the annotation file, the record and the path.
    """

    def refuse(why: str) -> DataError:
        return data_error(
            file, record, "unsafe_path", f"image path {relative!r} {why}",
            f"image paths must be relative to the dataset root {root} and stay inside it",
        )  # fmt: skip

    if not isinstance(relative, str) or not relative:
        raise refuse("is not a non-empty string")
    if "\x00" in relative:
        raise refuse("contains a NUL byte")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or relative.startswith("~"):
        raise refuse("is absolute")
    if ".." in pure.parts:
        raise refuse("contains '..'")
    base = Path(root).resolve()
    resolved = (base / pure).resolve()  # follows symlinks: a link may point anywhere
    if not resolved.is_relative_to(base):
        raise refuse(f"resolves to {resolved}, outside the root (a symlink?)")
    return resolved


def resolve_annotation(root: str | Path, annotation_file: str | Path) -> Path:
    """The annotation file: absolute as given, or relative to `root` (it comes from config, not data)."""
    return Path(root) / annotation_file


# -- JSON -------------------------------------------------------------------------------------


def _open_text(path: Path) -> IO[str]:
    try:
        return open(path, encoding="utf-8-sig")  # tolerate a byte-order mark
    except FileNotFoundError:
        raise FileNotFoundError(
            f"annotation file {path} does not exist; check root and annotation_file"
        ) from None


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; invalid JSON fails at once with the path and line:column."""
    path = Path(path)
    with _open_text(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise DataError(
                f"{path}:{e.lineno}:{e.colno}: invalid JSON ({e.msg}); fix or re-download the file",
                file=path, reason="invalid_json",
            ) from None  # fmt: skip


def read_jsonl(path: str | Path) -> list[Any]:
    """Parse a JSON-lines file (blank lines ignored); invalid JSON fails at once with path and line:column."""
    path = Path(path)
    out = []
    with _open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataError(
                    f"{path}:{lineno}:{e.colno}: invalid JSON ({e.msg}); each line must hold one JSON object",
                    file=path, reason="invalid_json",
                ) from None  # fmt: skip
    return out


# -- error policy -----------------------------------------------------------------------------


class ErrorPolicy:
    """What happens to a bad record: `"skip"` (count per reason, log, go on) or `"raise"`.

    `stats` counts `records` (read), `samples` (kept), `filtered` (another split),
    `skipped` and `skipped/<reason>`: a flat dict of ints, ready for a logger.
    """

    def __init__(self, on_error: str = "skip"):
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        self.on_error = on_error
        self.stats: Counter[str] = Counter(skipped=0)  # present even when nothing was skipped

    def handle(self, error: DataError) -> None:
        """Raise `error` under "raise"; otherwise count and log it."""
        if self.on_error == "raise":
            raise error
        self.stats["skipped"] += 1
        key = f"skipped/{error.reason}"
        self.stats[key] += 1
        level = logging.WARNING if self.stats[key] <= _LOUD_SKIPS else logging.DEBUG
        log.log(level, "skipped [%s] %s", error.reason, error)


# -- images -----------------------------------------------------------------------------------


class ImageProblem(Exception):
    """Why an image cannot be used: `reason` (a stats key) and `detail` (a sentence naming the image)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def read_image(
    source: str | Path | bytes, max_pixels: int = DEFAULT_MAX_PIXELS, decode: bool = True, name: str = ""
) -> tuple[tuple[int, int], Image.Image | None]:
    """((width, height), RGB image or None) of a file or encoded bytes, under a pixel limit.

    The size is read from the header and checked against `max_pixels` *before* any pixel is
    decoded, as `QwenVLProcessor.load_image` does. With `decode=False` only the header is read.
    Raises `ImageProblem` with a reason: missing_image, empty_image, corrupt_image,
    truncated_image, image_too_large.
    """
    name = name or str(source if not isinstance(source, bytes) else "<bytes>")
    if isinstance(source, bytes):
        if not source:
            raise ImageProblem("empty_image", f"image {name} is empty (0 bytes)")
        fp: Any = io.BytesIO(source)
    else:
        try:
            size = os.stat(source).st_size
        except FileNotFoundError:
            raise ImageProblem("missing_image", f"image {name} does not exist") from None
        except OSError as e:
            raise ImageProblem("missing_image", f"image {name} cannot be read ({e})") from None
        if size == 0:
            raise ImageProblem("empty_image", f"image {name} is a zero-byte file")
        fp = source
    with warnings.catch_warnings():
        # PIL warns above its own limit; the explicit max_pixels check below is the one that counts.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(fp)
        except Image.DecompressionBombError as e:
            raise ImageProblem("image_too_large", f"image {name} is too large to open ({e})") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise ImageProblem("corrupt_image", f"image {name} is not a readable image ({e})") from None
        with img:
            w, h = img.size
            if w * h > max_pixels:
                raise ImageProblem(
                    "image_too_large", f"image {name} is {w}x{h}, over the {max_pixels}-pixel limit"
                )
            if not decode:
                return (w, h), None
            try:
                img.load()
                rgb = img.convert("RGB")
            except (OSError, SyntaxError, ValueError, EOFError) as e:
                reason = "truncated_image" if "truncat" in str(e).lower() else "corrupt_image"
                raise ImageProblem(reason, f"image {name} cannot be decoded ({e})") from None
    return (w, h), rgb


_IMAGE_HINT = "replace or re-download the image, or drop the record"
_RECORD_HINT = "fix the record or drop it"


def load_sample_images(sample: Sample, processor_or_max_pixels: Any = DEFAULT_MAX_PIXELS) -> Sample:
    """A copy of `sample` with every image path opened as an RGB PIL image.

    `processor_or_max_pixels` is a pixel limit or anything with a `max_pixels` attribute (a
    `QwenVLProcessor`). A missing, zero-byte, corrupt, truncated or too-large image raises a
    DataError naming the annotation file, the record and the reason.
    """
    limit = processor_or_max_pixels
    if not isinstance(limit, int):
        limit = int(limit.max_pixels)
    images: list[Image.Image | str] = []
    sizes = []
    for image in sample.images:
        if isinstance(image, Image.Image):
            images.append(image)
            sizes.append(image.size)
            continue
        try:
            size, pil = read_image(image, limit)
        except ImageProblem as p:
            where = sample.meta.get("source"), sample.meta.get("record")
            raise data_error(*where, p.reason, p.detail, _IMAGE_HINT) from None
        images.append(pil)
        sizes.append(size)
    meta = dict(sample.meta)
    if len(sizes) == 1:
        meta.setdefault("image_size", sizes[0])
    return dataclasses.replace(sample, images=images, meta=meta)


# -- the loader base class --------------------------------------------------------------------


class FormatLoader(Dataset):
    """Map-style dataset of Samples over the good records of one annotation file.

    Subclasses set `name` and implement `records()` (yield `(record, raw)`: record index or
    question id, and the raw JSON) and `build(record, raw)` (a Sample, None for a record of
    another split, or raise via `self.error`).
    """

    name: ClassVar[str] = "format"

    def __init__(
        self,
        root: str | Path,
        annotation_file: str | Path,
        split: str | Iterable[str] | None = None,
        on_error: str = "skip",
        lang: str = "en",
        *,
        check_images: str = "exists",
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        if check_images not in CHECK_IMAGES:
            raise ValueError(f"check_images must be one of {CHECK_IMAGES}, got {check_images!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"dataset root {self.root} is not a directory; set root to the folder image paths start from"
            )
        self.annotation_file = resolve_annotation(root, annotation_file)
        self.split = split if split is None or isinstance(split, str) else tuple(split)
        self.lang, self.check_images, self.max_pixels = lang, check_images, int(max_pixels)
        templates.prompt("caption", lang)  # an unknown language fails here, naming the known ones
        self.policy = ErrorPolicy(on_error)
        self._image_sizes: dict[str, tuple[int, int]] = {}
        self._image_problems: dict[str, ImageProblem] = {}
        self._image_ok: set[str] = set()
        self._records: list[tuple[Any, Any]] = []
        self._index()

    # -- subclass interface ------------------------------------------------------------------
    def records(self) -> Iterator[tuple[Any, Any]]:
        raise NotImplementedError

    def build(self, record: Any, raw: Any) -> Sample | None:
        raise NotImplementedError

    # -- dataset -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, i: int) -> Sample:
        record, raw = self._records[i]
        sample = self.build(record, raw)
        assert sample is not None  # it was built once already, at construction
        if len(sample.images) == 1 and "image_size" not in sample.meta:
            if (size := self._image_sizes.get(str(sample.images[0]))) is not None:
                sample.meta["image_size"] = size
        return sample

    def __iter__(self) -> Iterator[Sample]:
        return (self[i] for i in range(len(self)))

    @property
    def stats(self) -> dict[str, int]:
        """Counts: records, samples, filtered, skipped, skipped/<reason>."""
        return dict(self.policy.stats)

    def load_images(self, sample: Sample) -> Sample | None:
        """`load_sample_images` under this loader's pixel limit and error policy (None when skipped)."""
        try:
            return load_sample_images(sample, self.max_pixels)
        except DataError as e:
            self.policy.handle(e)
            return None

    # -- helpers for subclasses --------------------------------------------------------------
    def error(self, record: Any, reason: str, detail: str, hint: str = _RECORD_HINT) -> DataError:
        return data_error(self.annotation_file, record, reason, detail, hint)

    def layout_error(self, expected: str) -> DataError:
        """The file as a whole does not have the layout of this format: fail at once."""
        return DataError(
            f"{self.annotation_file}: not a {self.name} annotation file; expected {expected}; "
            f"check annotation_file, or pick the loader of the file's format",
            file=self.annotation_file, reason="bad_layout",
        )  # fmt: skip

    def as_dict(self, record: Any, raw: Any) -> dict:
        if not isinstance(raw, dict):
            raise self.error(record, "bad_record", f"expected a JSON object, got {type(raw).__name__}")
        return raw

    def get(self, raw: dict, record: Any, key: str, types: Any = str, default: Any = _MISSING) -> Any:
        """`raw[key]`, checked to be of `types` (bool is not a number; strings must not be blank)."""
        if key not in raw or raw[key] is None:
            if default is not _MISSING:
                return default
            raise self.error(
                record, "missing_field", f"missing field {key!r} (fields present: {sorted(raw)})"
            )
        value = raw[key]
        numeric = types in (int, float) or (isinstance(types, tuple) and set(types) <= {int, float})
        if not isinstance(value, types) or (numeric and isinstance(value, bool)):
            want = types.__name__ if isinstance(types, type) else "/".join(t.__name__ for t in types)
            raise self.error(record, "bad_value", f"field {key!r} should be {want}, got {value!r:.80}")
        if isinstance(value, str) and not value.strip():
            raise self.error(record, "bad_value", f"field {key!r} is blank")
        return value

    def image(self, record: Any, relative: str) -> str:
        """A data-given image path, confined to the root, as a string."""
        return str(safe_path(self.root, relative, file=self.annotation_file, record=record))

    def in_split(self, value: Any) -> bool:
        if self.split is None:
            return True
        return value == self.split if isinstance(self.split, str) else value in self.split

    def plain_sample(
        self,
        record: Any,
        sid: Any,
        task: str,
        prompt: str,
        target: str | None,
        images: list[str],
        answers: list[str] = (),
        boxes: list = (),
        **meta: Any,
    ) -> Sample:
        """A plain-format Sample: one user turn (images + prompt markup), one assistant turn (target).

        `target=None` (a test split without answers) leaves the assistant turn out.
        """
        messages = [Message("user", prompt, num_images=len(images))]
        if target is not None:
            messages.append(Message("assistant", target))
        meta = {"source": str(self.annotation_file), "record": record, **meta}
        return Sample(
            task=task, messages=messages, images=list(images), answers=list(answers), boxes=list(boxes),
            lang=self.lang, id=f"{self.name}/{sid}", meta=meta,
        )  # fmt: skip

    def vqa_sample(
        self, record: Any, sid: Any, question: str, answers: list[str], target: str | None, image: str, **meta
    ) -> Sample:
        """A `vqa` Sample: the question escaped into the prompt, the target escaped, answers kept plain."""
        prompt = templates.prompt("vqa", self.lang, question=escape(question.strip()))
        target = None if target is None else escape(target.strip())
        return self.plain_sample(record, sid, "vqa", prompt, target, [image], answers, **meta)

    # -- construction ------------------------------------------------------------------------
    def _index(self) -> None:
        stats = self.policy.stats
        stats.update(records=0, filtered=0)  # stable keys for loggers
        # File-level errors (invalid JSON, wrong layout) propagate from records() and fail at once.
        for record, raw in self.records():
            stats["records"] += 1
            try:
                sample = self.build(record, raw)
                if sample is None:
                    stats["filtered"] += 1
                    continue
                self._check_images(sample)
            except DataError as e:
                self.policy.handle(e)
                continue
            self._records.append((record, raw))
        stats["samples"] = len(self._records)
        log.info("%s: %s", self.annotation_file, dict(stats))

    def _check_images(self, sample: Sample) -> None:
        if self.check_images == "none":
            return
        for path in sample.images:
            if not isinstance(path, str) or path in self._image_ok:
                continue  # images are shared by many records (VQA, RefCOCO): probe each once
            problem = self._image_problems.get(path) or self._probe(path)
            if problem is not None:
                raise self.error(sample.meta.get("record"), problem.reason, problem.detail, _IMAGE_HINT)

    def _probe(self, path: str) -> ImageProblem | None:
        try:
            if self.check_images == "exists":
                try:
                    size = os.stat(path).st_size
                except FileNotFoundError:
                    raise ImageProblem("missing_image", f"image {path} does not exist") from None
                except OSError as e:
                    raise ImageProblem("missing_image", f"image {path} cannot be read ({e})") from None
                if size == 0:
                    raise ImageProblem("empty_image", f"image {path} is a zero-byte file")
            else:
                self._image_sizes[path], _ = read_image(path, self.max_pixels, self.check_images == "decode")
        except ImageProblem as p:
            self._image_problems[path] = p
            return p
        self._image_ok.add(path)
        return None
