"""qwenvl-convert: turn the released Qwen-VL checkpoint into a QwenVLModel directory.

    qwenvl-convert /models/Qwen-VL checkpoints/qwen_vl

SRC_DIR holds the release (config.json, weight shards with their index JSON, qwen.tiktoken); OUT_DIR
receives config.json, model.safetensors, the tokenizer and processor_config.json, which
`QwenVLModel.from_pretrained` and `QwenVLProcessor.from_pretrained` read. Weights keep their dtype.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="qwenvl-convert", description="Convert a released Qwen-VL checkpoint directory."
    )
    parser.add_argument("src", type=Path, metavar="SRC_DIR", help="released checkpoint directory")
    parser.add_argument("out", type=Path, metavar="OUT_DIR", help="where to write the converted model")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from qwenvl.models.convert import convert_directory  # after parsing: --help stays instant

    try:
        report = convert_directory(args.src, args.out)
    except (FileNotFoundError, ValueError) as e:
        print(f"qwenvl-convert: error: {e}", file=sys.stderr)
        return 1
    print(
        f"converted {report.tensors} tensors from {args.src} to {args.out}: {report.parameters:,} parameters"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
