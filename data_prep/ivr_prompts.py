"""The Asterisk IVR prompts: real human telephone speech that every Debian machine can fetch.

Debian's ``asterisk-core-sounds-en-wav`` holds the English Asterisk prompts read by one speaker (Allison
Smith) as 8 kHz mono 16-bit wav under ``usr/share/asterisk/sounds/en_US_f_Allison/`` (names such as
``vm-intro``, ``digits/1``); ``asterisk-core-sounds-en`` holds their transcripts in
``usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz``, one ``name: text`` line per prompt.

``download()`` fetches both packages with ``apt-get download`` into a cache and unpacks them with ``dpkg -x``
(nothing is installed); ``prepare(corpus_dir, out_dir)`` cleans the transcripts, labels each prompt with a domain from
``DOMAIN_TABLE``, resamples to 16 kHz, splits each domain into train/dev/test and writes manifests.

Transcript file quirks handled (Debian 1.6.1-1):
- ``;`` comment lines and blank lines are ignored; a line that starts with white space, or does not start with
  ``name:``, continues the previous entry's text; the text is everything after the first ``:``.
- production notes in ``[...]``, ``(...)`` or ``<...>``: an entry made only of notes is not speech and is
  dropped (``ascending-2tone: [ascending tones]``, ``beep``, ``tt-monkeys``, ``confbridge-join: <beep
  ascending>``, ``silence/1: (1 second of silence)``);
  notes inside spoken text are removed and the spoken words kept (``letters/at: at [@]`` -> ``at``,
  ``spy-iax2: IAX (note: does not say "2")`` -> ``IAX``, ``vm-intro: ... (simple tone sound plays)``).
- ``...`` marks where another prompt is spliced in and is not spoken (``dir-multi2: ... for ...`` -> ``for``).
- keypad symbols standing alone are read aloud: ``*`` -> ``star``, ``#`` -> ``pound``.
- a few spelling mistakes in the transcripts are corrected (``TRANSCRIPT_FIXES``).
The original line is kept in the ``raw_text`` field of every record.

Dropped entries (each counted in ``skipped.jsonl`` with its reason): ``silence/*`` (``excluded_domain``),
note-only entries (``non_speech``), entries whose wav is absent from the audio package (``missing_audio``;
``pls-try-call-later`` in 1.6.1-1), undecodable wavs (``unreadable_audio``), text left empty
(``empty_text``) and repeated names (``duplicate_name``).

Split: within each domain, prompts with the same normalized text form a group (``conf-*`` and
``confbridge-*`` repeat many sentences); groups are ordered by the SHA-1 of their text and dealt out to test
(20 %), dev (10 %) and train (the rest), see ``data_prep._common.assign_splits``. A sentence therefore never
appears in two splits of one domain, and the split does not depend on the machine or the order of files.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections import Counter
from pathlib import Path
from typing import Callable

from asr_analogy.errors import AudioError
from asr_analogy.io.atomic import atomic_dir

from asr_analogy.io.skips import SkipReport
from data_prep._common import (
    CorpusError,
    assign_splits,
    cache_root,
    check_existing,
    convert_audio,
    finish_output,
    report,
)

CORPUS = "ivr-prompts"
PACKAGES = ("asterisk-core-sounds-en-wav", "asterisk-core-sounds-en")
TRANSCRIPT_NAMES = ("core-sounds-en.txt.gz", "core-sounds-en.txt")
SPEAKER = "allison"
SPLIT_FRACTIONS = (0.7, 0.1, 0.2)  # train, dev, test

# Domain of a prompt from its name: the first row whose prefix starts the name wins; domain None drops the
# prompt. Counts are those of Debian 1.6.1-1 after the exclusions above (553 prompts, 25.2 minutes).
# Suggested syn2real targets: voicemail, conference, call_handling (and the small directory); the rest serve
# as source domains.
DOMAIN_TABLE: tuple[tuple[str, str | None, str], ...] = (
    ("silence/", None, "recorded silences, 1-10 s: not speech"),
    ("vm-", "voicemail", "voicemail menus and messages (114)"),
    ("confbridge-", "conference", "ConfBridge conference prompts (49)"),
    ("conf-", "conference", "MeetMe conference prompts (38)"),
    ("dir-", "directory", "dial-by-name company directory (15)"),
    ("queue-", "call_handling", "call queue announcements"),
    ("agent-", "call_handling", "call-center agent login"),
    ("call-", "call_handling", "call forwarding / call waiting"),
    ("pbx-", "call_handling", "transfer and call parking"),
    ("followme/", "call_handling", "find-me/follow-me"),
    ("priv-", "call_handling", "call screening"),
    ("privacy-", "call_handling", "privacy manager (45 call_handling in all)"),
    ("screen-", "call_handling", "call screening options"),
    ("digits/", "digits", "numbers, ordinals, days, months, times of day (94)"),
    ("letters/", "letters", "letter and symbol names (61)"),
    ("phonetic/", "phonetic", "NATO spelling alphabet (27)"),
    ("", "general", "everything else: system messages, channel names, dictation, demo prompts (110)"),
)

# Spelling mistakes in core-sounds-en.txt and what the speaker says. Word-boundary, case-sensitive.
TRANSCRIPT_FIXES: tuple[tuple[str, str], ...] = (
    ("exclaimation-point", "exclamation point"),  # letters/exclaimation-point
    ("represenatives", "representatives"),  # queue-periodic-announce
    ("umute", "unmute"),  # conf-adminmenu-menu8
    ("Un-indentified", "Unidentified"),  # unidentified-no-callback
    ("witheld", "withheld"),  # unidentified-no-callback
    ("fourtieth", "fortieth"),  # digits/h-40
)

# Cleaning rules applied in order to the transcript text; each with why.
_TEXT_RULES: tuple[tuple[re.Pattern, str], ...] = (
    (re.compile(r"\[[^\]]*\]"), " "),  # [production note]: not spoken
    (re.compile(r"\([^)]*\)"), " "),  # (production note): not spoken
    (re.compile(r"<[^>]*>"), " "),  # <beep ascending>: not spoken
    (re.compile(r"\.{3,}|\u2026"), " "),  # ... : another prompt is spliced in here
    (re.compile(r"(?<!\S)\*(?!\S)"), "star"),  # keypad star read aloud
    (re.compile(r"(?<!\S)#(?!\S)"), "pound"),  # keypad pound read aloud
    (re.compile(r"\s+([,.;:!?])"), r"\1"),  # no space before punctuation left by removals
    (re.compile(r"^[\s,.;:!?]+"), ""),  # no leading punctuation left by removals
    (re.compile(r"\s+"), " "),  # single spaces
)
_NOTE_ONLY = re.compile(r"^\s*(?:(?:\[[^\]]*\]|\([^)]*\)|<[^>]*>)\s*)+$")
_ENTRY = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_./+-]*):(.*)$")


def domain_of(name: str) -> str | None:
    """Domain of prompt ``name`` from ``DOMAIN_TABLE`` (first matching prefix); None for excluded prompts."""
    for prefix, domain, _ in DOMAIN_TABLE:
        if name.startswith(prefix):
            return domain
    return None


def clean_text(raw: str) -> str:
    """Spoken words of a transcript entry: notes and splice marks removed, keypad symbols and typos fixed."""
    text = raw
    for wrong, right in TRANSCRIPT_FIXES:
        text = re.sub(rf"(?<![\w-]){re.escape(wrong)}(?![\w-])", right, text)
    for pattern, repl in _TEXT_RULES:
        text = pattern.sub(repl, text)
    return text.strip()


def is_note_only(raw: str) -> bool:
    """True when an entry's text consists only of ``[...]``, ``(...)`` or ``<...>`` notes (a tone, a silence)."""
    return bool(_NOTE_ONLY.match(raw))


def parse_transcripts(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Read ``core-sounds-en.txt(.gz)`` into [(name, raw_text), ...] in file order.

    Comment (``;``) and blank lines are skipped; continuation lines are joined to the previous entry with a
    space. Raises ``CorpusError`` naming the file and line for text before the first entry, or when no entry
    is found.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise CorpusError(f"cannot read transcript file {path}: {exc}") from None
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        lines = data.decode("latin-1").splitlines()
    entries: list[list[str]] = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        match = None if line[:1].isspace() else _ENTRY.match(line)
        if match:
            entries.append([match.group(1), match.group(2).strip()])
        elif entries:
            entries[-1][1] = (entries[-1][1] + " " + line.strip()).strip()
        else:
            raise CorpusError(f"{path}:{lineno}: expected 'name: text', got {line.strip()[:60]!r}")
    if not entries:
        raise CorpusError(f"transcript file {path} holds no 'name: text' entries")
    return [(name, text) for name, text in entries]


# ---- fetching and locating the corpus ----------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``${ASR_ANALOGY_CACHE:-~/.cache/asr_analogy}/corpora/ivr``."""
    return cache_root() / "corpora" / "ivr"


def _find_debs(folder: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    found = {}
    for pkg in packages:
        hits = sorted(folder.glob(f"{pkg}_*.deb"))
        if hits:
            found[pkg] = hits[-1]
    return found


def download_packages(deb_dir: str | os.PathLike, *, update_index: bool = False,
                      echo: Callable[[str], None] | None = print,
                      packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Fetch Debian ``packages`` (the corpus's two by default) into ``deb_dir`` with ``apt-get download`` (no
    install); returns their paths.

    When apt does not know the packages, ``update_index`` (an explicit opt-in: it changes the machine's package
    lists) runs ``apt-get update`` once as root and retries. Raises ``CorpusError`` with what to do instead when
    apt-get is absent, the lists are stale and no update was asked for (or we are not root), or a step fails.
    """
    deb_dir = Path(deb_dir)
    have = _find_debs(deb_dir, packages) if deb_dir.is_dir() else {}
    if len(have) == len(packages):
        return have
    if shutil.which("apt-get") is None:
        raise CorpusError(
            "apt-get not found: cannot fetch the Debian packages " + " and ".join(packages) + "; download their "
            ".deb files elsewhere and pass --from DIR (a folder with the .deb files or an unpacked tree)"
        )
    deb_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=deb_dir))
    os.chmod(tmp, 0o755)  # apt drops privileges to _apt for downloads; let it read the folder
    try:
        if echo:
            echo(f"fetching {' '.join(packages)} with apt-get download into {deb_dir}")
        result = _apt_download(tmp, packages)
        if result.returncode != 0 and _unknown_package(result.stderr):
            if not update_index or os.geteuid() != 0:
                how = "run 'sudo apt-get update' once, then retry" + ("" if os.geteuid() != 0 else
                                                                       " (or pass --apt-update)")
                raise CorpusError(
                    f"apt does not know {' / '.join(packages)} yet (apt-get download: "
                    f"{_last_error(result.stderr)}); {how}, or pass --from DIR with the .deb files or an "
                    f"unpacked tree"
                )
            if echo:
                echo("running apt-get update (the package lists do not know the packages yet)")
            upd = subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True)
            if upd.returncode != 0:
                raise CorpusError(f"apt-get update failed: {_last_error(upd.stderr)}; pass --from DIR instead")
            result = _apt_download(tmp, packages)
        if result.returncode != 0:
            raise CorpusError(
                f"apt-get download {' '.join(packages)} failed: {_last_error(result.stderr)}; "
                f"pass --from DIR with the .deb files or an unpacked tree"
            )
        got = _find_debs(tmp, packages)
        if len(got) != len(packages):
            raise CorpusError(f"apt-get download left no .deb for {sorted(set(packages) - set(got))} in {tmp}")
        for deb in got.values():
            os.replace(deb, deb_dir / deb.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _find_debs(deb_dir, packages)


def _apt_download(cwd: Path, packages: tuple[str, ...]) -> subprocess.CompletedProcess:
    return subprocess.run(["apt-get", "download", *packages], cwd=cwd, capture_output=True, text=True)


def _unknown_package(stderr: str) -> bool:
    return "Unable to locate package" in stderr or "has no installation candidate" in stderr


def _last_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith("W:")]
    return lines[-1] if lines else "no message"


def extract_deb(deb: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Unpack the files of a .deb into ``dest`` with ``dpkg -x``, or in Python (ar + tar) without dpkg.

    Raises ``CorpusError`` naming the file when it is not a readable Debian package.
    """
    deb, dest = Path(deb), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if shutil.which("dpkg") is not None:
        res = subprocess.run(["dpkg", "-x", str(deb), str(dest)], capture_output=True, text=True)
        if res.returncode != 0:
            raise CorpusError(f"dpkg -x {deb} failed: {_last_error(res.stderr)}")
        return
    _extract_deb_python(deb, dest)


def _extract_deb_python(deb: Path, dest: Path) -> None:
    """Read the ar archive of a .deb and unpack its ``data.tar.*`` member (gz, xz, bz2 or plain)."""
    import io

    try:
        raw = deb.read_bytes()
    except OSError as exc:
        raise CorpusError(f"cannot read {deb}: {exc}") from None
    if not raw.startswith(b"!<arch>\n"):
        raise CorpusError(f"{deb} is not a Debian package (no ar header)")
    pos = 8
    while pos + 60 <= len(raw):
        header = raw[pos : pos + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise CorpusError(f"{deb}: corrupt ar member header at byte {pos}") from None
        body = raw[pos + 60 : pos + 60 + size]
        if name.startswith("data.tar"):
            if name.endswith(".zst"):
                raise CorpusError(f"{deb}: zstd-compressed data needs dpkg (install dpkg or unpack it yourself)")
            try:
                with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as tar:
                    if hasattr(tarfile, "data_filter"):
                        tar.extractall(dest, filter="data")
                    else:  # pragma: no cover - Python without extraction filters
                        tar.extractall(dest)
            except tarfile.TarError as exc:
                raise CorpusError(f"{deb}: cannot unpack {name}: {exc}") from None
            return
        pos += 60 + size + (size % 2)
    raise CorpusError(f"{deb} holds no data.tar member")


def download(target_dir: str | os.PathLike | None = None, *, update_index: bool = False,
             echo: Callable[[str], None] | None = print, packages: tuple[str, ...] = PACKAGES) -> Path:
    """Download (once) and unpack (once) ``packages`` (the corpus's two by default) under ``target_dir`` (default
    ``default_cache_dir()``); returns the unpacked tree, a ``corpus_dir`` for ``prepare``. ``update_index``: see
    ``download_packages``."""
    target_dir = Path(target_dir) if target_dir is not None else default_cache_dir()
    unpacked = target_dir / "unpacked"
    if (unpacked / ".complete").is_file():
        return unpacked
    debs = download_packages(target_dir / "debs", update_index=update_index, echo=echo, packages=packages)
    with atomic_dir(unpacked, force=True) as tmp:
        for deb in debs.values():
            extract_deb(deb, tmp)
        (tmp / ".complete").write_text("\n".join(p.name for p in debs.values()) + "\n")
    return unpacked


def locate_corpus(root: str | os.PathLike) -> tuple[Path, Path]:
    """Find (transcript file, audio root) in an unpacked tree: the audio root is the folder under which the
    most transcript names exist as ``<name>.wav`` (``.../sounds/en_US_f_Allison`` in the Debian layout).

    Raises ``CorpusError`` naming ``root`` when either is missing.
    """
    root = Path(root)
    transcripts = [p for name in TRANSCRIPT_NAMES for p in sorted(root.rglob(name))]
    if not transcripts:
        raise CorpusError(
            f"no transcript file ({' or '.join(TRANSCRIPT_NAMES)}) under {root}; it comes with the "
            f"asterisk-core-sounds-en package"
        )
    transcript = transcripts[0]
    names = {name for name, _ in parse_transcripts(transcript)}
    votes: Counter = Counter()
    for wav in root.rglob("*.wav"):
        rel = wav.with_suffix("")
        for depth in (1, 2, 3):
            parts = rel.parts[-depth:]
            if len(parts) == depth and "/".join(parts) in names:
                votes[Path(*rel.parts[: len(rel.parts) - depth])] += 1
    if not votes:
        raise CorpusError(
            f"no prompt audio under {root}: none of the {len(names)} names in {transcript.name} exists as "
            f"<name>.wav (the audio comes with the asterisk-core-sounds-en-wav package)"
        )
    audio_root = votes.most_common(1)[0][0]
    return transcript, audio_root


# ---- preparing ---------------------------------------------------------------------------------------------


def prepare(
    corpus_dir: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    update_index: bool = False,
    force: bool = False,
    echo: Callable[[str], None] | None = print,
) -> Path:
    """Prepare the Asterisk prompts corpus in ``out_dir``; returns ``out_dir/manifest.jsonl``.

    ``corpus_dir``: an unpacked tree of the two packages (``dpkg -x``, or ``download()``'s result), the upstream
    sound tarball unpacked, or a folder holding the two .deb files; None: ``download(cache_dir,
    update_index=update_index)`` first (``${ASR_ANALOGY_CACHE:-~/.cache/asr_analogy}/corpora/ivr`` by default),
    unless ``out_dir`` is already prepared. Output (written atomically): 16 kHz mono wavs under
    ``audio/<name>.wav``, ``manifest.jsonl`` with fields audio_filepath, text, duration (s), domain, speaker
    ``allison``, split, source ``real``, id (the prompt name), raw_text; per-domain/split manifests
    ``manifests/{domain}.{split}.jsonl``; ``skipped.jsonl``; ``prepared.json``. An existing complete output is
    reused unless ``force``. ``echo`` prints progress and the summary (None: silent).
    """
    out_dir = Path(out_dir)
    options = {"speaker": SPEAKER, "split_fractions": list(SPLIT_FRACTIONS), "domains": _table_signature()}
    existing = check_existing(out_dir, CORPUS, options, force)
    if existing is not None:
        if echo:
            echo(f"{out_dir} is already prepared ({CORPUS}); pass --force to rebuild it")
        return existing

    with tempfile.TemporaryDirectory(prefix="ivr-debs-") as scratch:
        if corpus_dir is None:
            tree = download(cache_dir, update_index=update_index, echo=echo)
        else:
            tree = _unpacked_tree(Path(corpus_dir), Path(scratch))
        transcript, audio_root = locate_corpus(tree)
        entries = parse_transcripts(transcript)
        return _build(out_dir, entries, audio_root, transcript, options, force, echo)


def _unpacked_tree(tree: Path, scratch: Path) -> Path:
    """``tree`` itself, or, when it holds the two .deb files, ``scratch`` with them unpacked."""
    if not tree.is_dir():
        raise CorpusError(f"--from {tree}: no such directory")
    debs = _find_debs(tree)
    if not debs:
        return tree
    if len(debs) != len(PACKAGES):
        raise CorpusError(
            f"--from {tree}: found {sorted(p.name for p in debs.values())}, need both {' and '.join(PACKAGES)} "
            f".deb files"
        )
    for deb in debs.values():
        extract_deb(deb, scratch)
    return scratch


def _table_signature() -> list[list]:
    return [[p, d] for p, d, _ in DOMAIN_TABLE]


def _build(out_dir, entries, audio_root: Path, transcript: Path, options, force, echo) -> Path:
    from tqdm import tqdm

    skips = SkipReport()
    kept: list[dict] = []
    seen: set[str] = set()
    for name, raw in entries:
        if name in seen:
            skips.skip(name, "duplicate_name", f"second entry for {name} in {transcript.name}")
            continue
        seen.add(name)
        domain = domain_of(name)
        if domain is None:
            skips.skip(name, "excluded_domain", f"prefix excluded by DOMAIN_TABLE: {raw[:60]}")
            continue
        if is_note_only(raw):
            skips.skip(name, "non_speech", raw[:80])
            continue
        text = clean_text(raw)
        if not re.search(r"[A-Za-z0-9]", text):
            skips.skip(name, "empty_text", f"no words left in {raw[:60]!r}")
            continue
        wav = audio_root / f"{name}.wav"
        if not wav.is_file():
            skips.skip(name, "missing_audio", f"{wav} does not exist")
            continue
        kept.append({"id": name, "text": text, "raw_text": raw, "domain": domain, "src": wav})

    by_domain: dict[str, list[dict]] = {}
    for item in kept:
        by_domain.setdefault(item["domain"], []).append(item)
    split_of: dict[str, str] = {}
    for items in by_domain.values():
        split_of.update(assign_splits([(it["id"], it["text"]) for it in items], SPLIT_FRACTIONS))

    with atomic_dir(out_dir, force=force) as tmp:
        records = []
        for item in tqdm(kept, desc="ivr-prompts: 8 -> 16 kHz", unit="prompt", disable=echo is None):
            dst = tmp / "audio" / f"{item['id']}.wav"
            try:
                duration = convert_audio(item["src"], dst)
            except AudioError as exc:
                skips.skip(item["id"], "unreadable_audio", str(exc))
                continue
            records.append(
                {
                    "audio_filepath": str(dst),
                    "text": item["text"],
                    "duration": round(duration, 4),
                    "domain": item["domain"],
                    "speaker": SPEAKER,
                    "split": split_of[item["id"]],
                    "source": "real",
                    "id": item["id"],
                    "raw_text": item["raw_text"],
                }
            )
        summary = finish_output(
            tmp,
            records,
            skips,
            corpus=CORPUS,
            options=options,
            extra={"transcript_file": transcript.name, "n_transcript_entries": len(entries)},
        )
    report(summary, skips, out_dir, echo)
    return out_dir / "manifest.jsonl"
