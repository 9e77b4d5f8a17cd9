"""CSV / TSV tables of (audio path, transcript) rows, with or without a header row.

Columns are found by name in a header row (``path_column`` / ``text_column``, else the first known name of
``PATH_COLUMNS`` / ``TEXT_COLUMNS``), or by 0-based number; without a header the path is column 0 and the text
column 1 (LJSpeech's ``metadata.csv``: ``LJ001-0001|text|normalized text``, ids without suffix, works with
``audio_root=wavs``). Optional header columns ``domain``, ``split``, ``speaker``, ``source``, ``voice`` and ``id``
are carried into the manifest. Relative audio paths are resolved against ``audio_root`` (default: the
table's folder).

The header is detected when the first row contains one of the requested or known column names. The delimiter
is a tab for ``.tsv``/``.tab`` files and otherwise sniffed among ``, \\t | ;`` (comma when unsure). Rows are
read with the ``csv`` module and must have exactly as many fields as the header (or, without one, as most
rows): a row with an unquoted delimiter inside its text, or a quoted field left open that swallows the rows
after it, is skipped into ``skipped.jsonl`` (``malformed_row``, with its line) instead of giving a wrong
transcript.
"""

from __future__ import annotations

import collections
import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

from asr_analogy.io.skips import SkipReport
from data_prep._common import CARRY_FIELDS, CorpusError, Entry, resolve_audio_path
from data_prep._options import ImportOptions

CORPUS = "csv"
PATH_COLUMNS = ("audio_filepath", "audio_path", "path", "audio", "file_name", "filename", "file", "wav", "wav_path")
TEXT_COLUMNS = ("text", "transcript", "transcription", "sentence", "normalized_text", "utterance")
_DELIMITERS = ",\t|;"


def sniff_delimiter(path: Path, sample: str) -> str:
    """Tab for .tsv/.tab; otherwise the delimiter csv.Sniffer finds among ``, \\t | ;`` (comma when unsure)."""
    if path.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        return ","


@dataclass(frozen=True)
class Row:
    """One table row: its cells (stripped) and the lines it spans (1-based; ``end_line > line`` when a quoted
    field ran over line ends)."""

    line: int
    end_line: int
    cells: list[str]


def read_table(path: str | os.PathLike, *, delimiter: str | None = None) -> tuple[list[Row], str]:
    """All rows of a CSV/TSV file (blank rows dropped), read with the ``csv`` module, and the delimiter used.

    Raises ``CorpusError`` naming the file when it is missing, not UTF-8 text, unreadable by ``csv`` (naming the
    line), or holds no row.
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"table {path} does not exist")
    try:
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise CorpusError(f"{path}:{line}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    delim = delimiter or sniff_delimiter(path, content[:8192])
    quoting = csv.QUOTE_NONE if delim == "|" else csv.QUOTE_MINIMAL  # LJSpeech text holds bare quotes
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delim, quoting=quoting)
    rows, end = [], 0
    try:
        for cells in reader:
            start, end = end + 1, reader.line_num
            if any(c.strip() for c in cells):
                rows.append(Row(start, end, [c.strip() for c in cells]))
    except csv.Error as exc:
        raise CorpusError(f"{path}:{reader.line_num}: cannot read the row ({exc})") from None
    if not rows:
        raise CorpusError(f"table {path} holds no rows")
    return rows, delim


def strict_rows(rows: list[Row], n_fields: int, path: Path, skips: SkipReport) -> list[Row]:
    """The rows with exactly ``n_fields`` cells on one line; the others go to ``skips`` as ``malformed_row``
    (id ``<file>:<line>``): extra fields from an unquoted delimiter inside a transcript, missing fields, or a
    quoted field that runs over line ends (an unterminated quote swallowing the rows after it)."""
    good = []
    for row in rows:
        if row.end_line > row.line:
            why = (f"a quoted field runs from line {row.line} to line {row.end_line} (unterminated quote?); "
                   f"those lines are skipped")
        elif len(row.cells) != n_fields:
            why = f"{len(row.cells)} fields, expected {n_fields} (an unquoted delimiter inside a field?)"
        else:
            good.append(row)
            continue
        skips.skip(f"{path.name}:{row.line}", "malformed_row", why)
    return good


def _column_index(spec: str | int | None, header: list[str] | None, known: tuple[str, ...], default: int,
                  what: str, path: Path) -> int:
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        return int(spec)
    if header is None:
        if spec is not None:
            raise CorpusError(
                f"{path} has no header row, so the {what} column {spec!r} cannot be found by name; give its "
                f"0-based number or add a header"
            )
        return default
    lowered = [h.lower() for h in header]
    if spec is not None:
        if spec.lower() not in lowered:
            raise CorpusError(f"{path}: no {what} column {spec!r}; the header has {header}")
        return lowered.index(spec.lower())
    for name in known:
        if name in lowered:
            return lowered.index(name)
    raise CorpusError(f"{path}: no {what} column (looked for {', '.join(known)}); the header has {header}")


def detect_header(first_row: list[str], *names: str | int | None) -> bool:
    """True when ``first_row`` holds one of the requested column ``names`` or a known column name."""
    cells = {c.lower() for c in first_row}
    wanted = {str(n).lower() for n in names if isinstance(n, str) and not n.strip().isdigit()}
    return bool(cells & wanted) or bool(cells & set(PATH_COLUMNS + TEXT_COLUMNS))


def table_entries(
    path: str | os.PathLike,
    *,
    path_column: str | int | None = None,
    text_column: str | int | None = None,
    delimiter: str | None = None,
    header: bool | None = None,
    audio_root: str | os.PathLike | None = None,
    defaults: dict | None = None,
    skips: SkipReport,
) -> list[Entry]:
    """Rows of a table as ``Entry`` objects (see the module docstring). Every row must have as many fields as
    the header (without a header: as most rows); other rows are recorded in ``skips`` (``strict_rows``)."""
    path = Path(path)
    rows, _ = read_table(path, delimiter=delimiter)
    has_header = detect_header(rows[0].cells, path_column, text_column) if header is None else header
    head = rows[0].cells if has_header else None
    body = rows[1:] if has_header else rows
    p_idx = _column_index(path_column, head, PATH_COLUMNS, 0, "audio path", path)
    t_idx = _column_index(text_column, head, TEXT_COLUMNS, 1, "text", path)
    n_fields = len(head) if head else collections.Counter(len(r.cells) for r in body).most_common(1)[0][0]
    if max(p_idx, t_idx) >= n_fields:
        raise CorpusError(f"{path}: rows have {n_fields} fields; there is no column {max(p_idx, t_idx)} "
                          f"(0-based) for the audio path or text")
    lowered = [h.lower() for h in head] if head else []
    carry = {name: lowered.index(name) for name in (*CARRY_FIELDS, "id") if name in lowered}
    base = Path(audio_root) if audio_root is not None else path.parent
    entries = []
    for row in strict_rows(body, n_fields, path, skips):
        cells = row.cells
        fields = dict(defaults or {})
        fields.update({name: cells[i] for name, i in carry.items() if cells[i] and name != "id"})
        utt_id = cells[carry["id"]] if "id" in carry and cells[carry["id"]] else cells[p_idx]
        audio = resolve_audio_path(cells[p_idx], base) if cells[p_idx] else None
        entries.append(Entry(id=utt_id or f"{path.name}:{row.line}", text=cells[t_idx], audio=audio, fields=fields))
    return entries


def prepare(
    table: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    path_column: str | int | None = None,
    text_column: str | int | None = None,
    delimiter: str | None = None,
    header: bool | None = None,
    audio_root: str | os.PathLike | None = None,
    **options,
) -> Path:
    """Import a CSV/TSV table of audio paths and transcripts into ``out_dir``; returns ``out_dir/manifest.jsonl``.

    ``options``: ``ImportOptions`` (``domain``, ``split``, ``source`` and ``speaker`` fill fields that the table's
    own columns do not give; ``force``, ``echo``). ``resample`` writes every file as 16 kHz mono wav under ``out_dir/audio``; otherwise the manifest points to
    the original files (absolute paths). Missing/unreadable audio, empty text and short rows are skipped and
    listed in ``skipped.jsonl``; a missing column, or no usable row, is an error and writes nothing.
    """
    opts = ImportOptions.of(CORPUS, options)
    table = Path(table)
    skips = SkipReport()
    defaults = opts.defaults()
    entries = table_entries(table, path_column=path_column, text_column=text_column, delimiter=delimiter,
                            header=header, audio_root=audio_root, defaults=defaults, skips=skips)
    options = {"table": str(table.resolve()), "path_column": path_column, "text_column": text_column,
               "delimiter": delimiter, "header": header, "audio_root": str(audio_root) if audio_root else None,
               **defaults, "resample": opts.resample}
    return opts.write(entries, out_dir, corpus=CORPUS, options=options, skips=skips, total=len(entries))
