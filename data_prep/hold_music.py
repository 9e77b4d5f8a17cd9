"""Real hold music for the recipe's real-recording conditions (``corpus.degrade: "music:snr_db=5"``).

Debian's ``asterisk-moh-opsound-wav`` (CC-BY-SA 3.0, opsound.org artists; see the package's
``usr/share/doc/asterisk-moh-opsound-wav/copyright``) holds five music-on-hold tracks, 18.4 minutes of 8 kHz mono
16-bit wav under ``usr/share/asterisk/moh/``. ``download()`` fetches it like the IVR corpus is fetched
(``apt-get download`` into a cache, unpacked with ``dpkg -x``, nothing installed, no ``apt-get update`` unless
asked); ``music_files(root)`` lists the tracks of an unpacked tree or of any folder of wav files.

Run ``python -m data_prep.hold_music [--apt-update] [--cache-dir DIR]`` (``make noise``) to fetch it ahead of a
recipe run.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

from data_prep import ivr_prompts
from data_prep._common import CorpusError, cache_root

PACKAGE = "asterisk-moh-opsound-wav"
LICENSE = "CC-BY-SA-3.0"


def default_cache_dir() -> Path:
    """``${ASR_ANALOGY_CACHE:-~/.cache/asr_analogy}/noise/moh``."""
    return cache_root() / "noise" / "moh"


def download(target_dir: str | os.PathLike | None = None, *, update_index: bool = False,
             echo: Callable[[str], None] | None = print) -> Path:
    """Fetch (once) and unpack (once) ``asterisk-moh-opsound-wav`` under ``target_dir`` (default
    ``default_cache_dir()``); returns the unpacked tree. ``update_index``: let a root user run ``apt-get update``
    when apt's lists do not know the package (an explicit opt-in). Raises ``CorpusError`` saying what to do."""
    target = Path(target_dir) if target_dir is not None else default_cache_dir()
    return ivr_prompts.download(target, update_index=update_index, echo=echo, packages=(PACKAGE,))


def music_files(root: str | os.PathLike) -> list[Path]:
    """The wav files under ``root`` in sorted order (the tracks of an unpacked tree: ``.../asterisk/moh/*.wav``).

    Raises ``CorpusError`` naming ``root`` when it holds none."""
    root = Path(root)
    files = sorted(p for p in root.rglob("*.wav") if p.is_file()) if root.is_dir() else []
    if not files:
        raise CorpusError(f"no music: {root} holds no .wav file (fetch {PACKAGE} with `make noise`, or set "
                          f"corpus.music_dir to a folder of wav files)")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_prep.hold_music", description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=None, help=f"download cache (default {default_cache_dir()})")
    parser.add_argument("--apt-update", action="store_true",
                        help="as root, run apt-get update once when apt does not know the package yet")
    args = parser.parse_args(argv)
    try:
        files = music_files(download(args.cache_dir, update_index=args.apt_update))
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"hold music ({PACKAGE}, {LICENSE}): {len(files)} tracks under {files[0].parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
