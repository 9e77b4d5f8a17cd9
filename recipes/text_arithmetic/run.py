"""Run the text-arithmetic example: ``python recipes/text_arithmetic/run.py CONFIG OUT [--set KEY=VALUE ...]``.

Every stage lives in ``asr_analogy.textlm.example``; this entry point only reads the config and prints the table.
"""

from __future__ import annotations

import argparse

from asr_analogy.io.yaml_file import parse_overrides
from asr_analogy.textlm.config import load_example_config
from asr_analogy.textlm.example import run_example


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("out_dir")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. finetune.steps=10 (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    config = load_example_config(args.config, parse_overrides(args.overrides))
    run_example(config, args.out_dir, progress=not args.quiet)
    with open(f"{args.out_dir}/results.md", encoding="utf-8") as fh:
        print(fh.read())


if __name__ == "__main__":
    main()
