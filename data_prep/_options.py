"""``ImportOptions``: the options every importer takes besides those of its input format."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Iterable, Sequence

from asr_analogy.io.skips import SkipReport
from data_prep._common import CorpusError, Entry, write_corpus


@dataclass(frozen=True)
class ImportOptions:
    """The options every importer takes besides those of its input format (its ``**options``): the fields it
    fills where the input gives none, and how it writes its output."""

    domain: str | None = None  # domain of utterances the input does not label
    split: str | None = None  # train/dev/test for utterances the input does not label
    source: str = "real"  # "real" or "synthetic"
    speaker: str | None = None  # speaker of utterances the input does not label
    resample: bool = False  # write 16 kHz mono wavs under OUT_DIR/audio (else reference the files in place)
    force: bool = False  # replace a prepared output (only once the new one is complete)
    echo: Callable[[str], None] | None = print  # progress lines (None: quiet)

    @classmethod
    def of(cls, corpus: str, options: dict, *, without: Sequence[str] = ()) -> "ImportOptions":
        """The options of one call; an option the importer does not take is a ``CorpusError`` naming it."""
        known = sorted({f.name for f in fields(cls)} - set(without))
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise CorpusError(f"{corpus}: unknown option {unknown[0]!r}; it takes {', '.join(known)}")
        return cls(**options)

    def defaults(self, *, split: bool = True) -> dict:
        """The fields filled where the input gives none."""
        out = {"domain": self.domain, "split": self.split, "source": self.source, "speaker": self.speaker}
        if not split:
            del out["split"]
        return out

    def write(self, entries: Iterable[Entry], out_dir, *, corpus: str, options: dict, skips: SkipReport,
              total: int | None = None, resample: bool | None = None) -> Path:
        """``write_corpus`` with these options (``resample`` overrides for importers that always resample)."""
        return write_corpus(entries, out_dir, corpus=corpus, options=options, force=self.force,
                            resample=self.resample if resample is None else resample, skips=skips, echo=self.echo,
                            total=total)
