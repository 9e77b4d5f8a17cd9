"""The IVR prompts preparer on a small fixture in the Debian layout, and on the real packages when apt can
fetch them."""

from __future__ import annotations

import collections
import gzip
import hashlib
import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner

from asr_analogy.cli import main
from asr_analogy.errors import OutputExistsError
from asr_analogy.io.manifest import read_manifest
from data_prep import ivr_prompts
from data_prep._common import CorpusError, assign_splits, split_counts, text_key
from tests.data_prep._audio import snapshot, write_tone

SOUNDS = Path("usr/share/asterisk/sounds/en_US_f_Allison")
DOC = Path("usr/share/doc/asterisk-core-sounds-en")

# name -> transcript text, in the quirks of the real core-sounds-en.txt (continuation line added by hand).
TRANSCRIPT = """\
; Core Asterisk Sounds in English

vm-goodbye: Goodbye.
vm-intro: Please leave your message after the tone.  When done hang up or press the pound key. (simple tone sound plays)
vm-login: Comedian Mail.  Mailbox?
vm-next: Press 6 to play the next message.
vm-prev: Press 4 for the previous message
vm-delete: Press 7 to delete this message.
vm-repeat: Press 5 to repeat the current message.
vm-undelete: Press 7 to undelete this message.
vm-options: Press 1 to record your unavailable message,
    press 2 to record your busy message.
vm-duration: This message lasts ...
conf-locked: The conference is now locked.
confbridge-locked: The conference is now locked.
confbridge-join: <beep ascending>
dir-multi2: ... for ...
dictate/both_help: press * to toggle pause, press # to enter a new dictation filename
digits/1: one
digits/2: two
letters/at: at [@]
beep: [this is a simple beep tone]
silence/1: (1 second of silence)
pls-try-call-later: Please try your call again later.
queue-thankyou: Thank you for your patience
broken: This file is broken.
queue-blank: ...
vm-goodbye: Goodbye again.
"""
NO_WAV = {"pls-try-call-later"}
GARBAGE_WAV = {"broken"}

EXPECTED_TEXT = {
    "vm-goodbye": "Goodbye.",
    "vm-intro": "Please leave your message after the tone. When done hang up or press the pound key.",
    "vm-login": "Comedian Mail. Mailbox?",
    "vm-next": "Press 6 to play the next message.",
    "vm-prev": "Press 4 for the previous message",
    "vm-delete": "Press 7 to delete this message.",
    "vm-repeat": "Press 5 to repeat the current message.",
    "vm-undelete": "Press 7 to undelete this message.",
    "vm-options": "Press 1 to record your unavailable message, press 2 to record your busy message.",
    "vm-duration": "This message lasts",
    "conf-locked": "The conference is now locked.",
    "confbridge-locked": "The conference is now locked.",
    "dir-multi2": "for",
    "dictate/both_help": "press star to toggle pause, press pound to enter a new dictation filename",
    "digits/1": "one",
    "digits/2": "two",
    "letters/at": "at",
    "queue-thankyou": "Thank you for your patience",
}
EXPECTED_DOMAIN = {
    **{name: "voicemail" for name in EXPECTED_TEXT if name.startswith("vm-")},
    "conf-locked": "conference",
    "confbridge-locked": "conference",
    "dir-multi2": "directory",
    "dictate/both_help": "general",
    "digits/1": "digits",
    "digits/2": "digits",
    "letters/at": "letters",
    "queue-thankyou": "call_handling",
}
EXPECTED_SKIPS = {
    "confbridge-join": "non_speech",
    "beep": "non_speech",
    "silence/1": "excluded_domain",
    "pls-try-call-later": "missing_audio",
    "broken": "unreadable_audio",
    "queue-blank": "empty_text",
    "vm-goodbye": "duplicate_name",
}


def make_tree(root: Path) -> Path:
    """The two packages unpacked (dpkg -x) into ``root``: 8 kHz mono wavs plus the gzipped transcripts.

    Prompt i (in file order, first occurrence of a name) lasts 0.25 + 0.05 * i seconds.
    """
    (root / DOC).mkdir(parents=True, exist_ok=True)
    with gzip.open(root / DOC / "core-sounds-en.txt.gz", "wt") as fh:
        fh.write(TRANSCRIPT)
    names = [m.group(1) for m in re.finditer(r"^([\w/.-]+):", TRANSCRIPT, re.M)]
    for i, name in enumerate(names):
        wav = root / SOUNDS / f"{name}.wav"
        if name in NO_WAV or wav.exists():  # a repeated name keeps the first prompt's audio
            continue
        if name in GARBAGE_WAV:
            wav.parent.mkdir(parents=True, exist_ok=True)
            wav.write_bytes(b"RIFF not really a wave file")
            continue
        write_tone(wav, 0.25 + 0.05 * i, 8000)
    return root


def fixture_seconds(name: str) -> float:
    names = [m.group(1) for m in re.finditer(r"^([\w/.-]+):", TRANSCRIPT, re.M)]
    return 0.25 + 0.05 * names.index(name)


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "unpacked")


def test_prepare_fixture_manifest(tree, tmp_path):
    out = tmp_path / "ivr"
    manifest = ivr_prompts.prepare(tree, out, echo=None)
    assert manifest == out / "manifest.jsonl"
    recs = {r["id"]: r for r in read_manifest(manifest)}
    assert set(recs) == set(EXPECTED_TEXT)
    for name, rec in recs.items():
        assert rec["text"] == EXPECTED_TEXT[name], name
        assert rec["domain"] == EXPECTED_DOMAIN[name], name
        assert rec["speaker"] == "allison" and rec["source"] == "real"
        assert rec["split"] in ("train", "dev", "test")
        info = sf.info(rec["audio_filepath"])
        assert info.samplerate == 16000 and info.channels == 1
        # 8 kHz -> 16 kHz doubles the frames: 0.25 s = 2000 frames in, 4000 out.
        assert abs(info.frames - 2 * round(fixture_seconds(name) * 8000)) <= 1
        assert rec["duration"] == pytest.approx(fixture_seconds(name), abs=1e-3)
    assert recs["digits/1"]["audio_filepath"].endswith("audio/digits/1.wav")
    assert recs["letters/at"]["raw_text"] == "at [@]"

    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert {s["id"]: s["reason"] for s in skipped} == EXPECTED_SKIPS
    assert len(skipped) == len(EXPECTED_SKIPS)  # the first vm-goodbye is kept, its repeat skipped

    # voicemail: 10 distinct sentences -> 7 train, 1 dev, 2 test.
    vm = collections.Counter(r["split"] for r in recs.values() if r["domain"] == "voicemail")
    assert vm == {"train": 7, "dev": 1, "test": 2}
    # identical sentences of conf-* and confbridge-* share a split
    assert recs["conf-locked"]["split"] == recs["confbridge-locked"]["split"]

    # per-domain/split manifests hold the same records, with audio paths that resolve
    grouped = {}
    for path in sorted((out / "manifests").glob("*.jsonl")):
        domain, split = path.name[: -len(".jsonl")].split(".")
        for rec in read_manifest(path):
            assert (rec["domain"], rec["split"]) == (domain, split)
            assert Path(rec["audio_filepath"]) == Path(recs[rec["id"]]["audio_filepath"])
            grouped[rec["id"]] = rec
    assert set(grouped) == set(recs)

    info = json.loads((out / "prepared.json").read_text())
    assert info["n_utterances"] == 18
    assert info["skipped"] == {"non_speech": 2, "excluded_domain": 1, "missing_audio": 1, "unreadable_audio": 1,
                               "empty_text": 1, "duplicate_name": 1}
    assert info["per_domain"]["voicemail"]["train"]["n"] == 7


def test_rerun_skips_complete_output_and_force_rebuilds(tree, tmp_path, capsys):
    out = tmp_path / "ivr"
    ivr_prompts.prepare(tree, out)
    printed = capsys.readouterr().out
    assert "voicemail" in printed and "18 utterances" in printed
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    ivr_prompts.prepare(tree, out)
    assert "already prepared" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    # force rebuilds from the (now changed) source
    (tree / SOUNDS / "vm-goodbye.wav").unlink()
    ivr_prompts.prepare(tree, out, force=True, echo=None)
    ids = {r["id"] for r in read_manifest(out / "manifest.jsonl")}
    assert ids == set(EXPECTED_TEXT) - {"vm-goodbye"}


def test_existing_foreign_dir_is_refused_untouched(tree, tmp_path):
    out = tmp_path / "ivr"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="not a prepared corpus"):
        ivr_prompts.prepare(tree, out, echo=None)
    assert snapshot(out) == {"notes.txt": 4}


def test_tree_without_transcripts_fails_and_writes_nothing(tmp_path):
    src = tmp_path / "src"
    write_tone(src / SOUNDS / "vm-goodbye.wav", 0.3, 8000)
    out = tmp_path / "ivr"
    with pytest.raises(CorpusError, match=r"no transcript file \(core-sounds-en.txt.gz"):
        ivr_prompts.prepare(src, out, echo=None)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]


def test_tree_without_audio_fails_and_writes_nothing(tree, tmp_path):
    shutil.rmtree(tree / "usr/share/asterisk")
    out = tmp_path / "ivr"
    with pytest.raises(CorpusError, match="no prompt audio under"):
        ivr_prompts.prepare(tree, out, echo=None)
    assert not out.exists()


def test_all_audio_unreadable_fails_and_writes_nothing(tree, tmp_path):
    for wav in (tree / SOUNDS).rglob("*.wav"):
        wav.write_bytes(b"")
    out = tmp_path / "ivr"
    with pytest.raises(CorpusError, match="no usable utterance.*19 unreadable_audio"):
        ivr_prompts.prepare(tree, out, echo=None)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unpacked"]


# ---- transcript parsing and text rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, spoken",
    [
        ("at [@]", "at"),
        ('IAX (note: does not say "2")', "IAX"),
        ("... for ...", "for"),
        ("...to leave the conference.", "to leave the conference."),
        ("Currently, there are more than ...", "Currently, there are more than"),
        ("press * to toggle pause, press # to enter", "press star to toggle pause, press pound to enter"),
        ("Un-indentified or witheld and therefore", "Unidentified or withheld and therefore"),
        ("exclaimation-point [!]", "exclamation point"),
        ("Login incorrect.  Mailbox?", "Login incorrect. Mailbox?"),
        ("5*3", "5*3"),  # a star inside a token is not a keypad key
    ],
)
def test_clean_text(raw, spoken):
    assert ivr_prompts.clean_text(raw) == spoken


@pytest.mark.parametrize(
    "raw, note_only",
    [("[ascending tones]", True), ("<beep decending>", True), ("(10 seconds of silence)", True),
     ("at [@]", False), ("Goodbye.", False)],
)
def test_is_note_only(raw, note_only):
    assert ivr_prompts.is_note_only(raw) is note_only


@pytest.mark.parametrize(
    "name, domain",
    [("vm-intro", "voicemail"), ("conf-full", "conference"), ("confbridge-pin", "conference"),
     ("dir-intro", "directory"), ("queue-holdtime", "call_handling"), ("agent-pass", "call_handling"),
     ("followme/options", "call_handling"), ("digits/h-40", "digits"), ("letters/z", "letters"),
     ("phonetic/a_p", "phonetic"), ("spy-sip", "general"), ("silence/3", None)],
)
def test_domain_table(name, domain):
    assert ivr_prompts.domain_of(name) == domain


def test_parse_transcripts_continuations_and_errors(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("; comment\n\na: one\n  two\nb/c: x: y\n")
    assert ivr_prompts.parse_transcripts(path) == [("a", "one two"), ("b/c", "x: y")]
    path.write_text("; only a comment\n")
    with pytest.raises(CorpusError, match="holds no 'name: text' entries"):
        ivr_prompts.parse_transcripts(path)
    path.write_text("stray words first\na: one\n")
    with pytest.raises(CorpusError, match=r"t.txt:1: expected 'name: text'"):
        ivr_prompts.parse_transcripts(path)


# ---- splits ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, counts",
    [(1, (1, 0, 0)), (2, (1, 0, 1)), (3, (1, 1, 1)), (10, (7, 1, 2)), (15, (10, 2, 3)), (114, (80, 11, 23))],
)
def test_split_counts(n, counts):
    # dev = round(0.1 n), test = round(0.2 n), each at least 1 from n = 3 (test from n = 2): 114 -> 11, 23.
    assert split_counts(n, (0.7, 0.1, 0.2)) == counts


def test_assign_splits_is_order_independent_and_takes_smallest_hashes_for_test():
    items = [(f"p{i}", f"sentence number {i}") for i in range(20)]
    got = assign_splits(items)
    shuffled = items[:]
    random.Random(3).shuffle(shuffled)
    assert assign_splits(shuffled) == got
    by_hash = sorted(items, key=lambda it: hashlib.sha1(text_key(it[1]).encode()).hexdigest())
    assert {i for i, _ in by_hash[:4]} == {i for i, s in got.items() if s == "test"}
    assert {i for i, _ in by_hash[4:6]} == {i for i, s in got.items() if s == "dev"}


# ---- .deb input and fetching -------------------------------------------------------------------------------


def _build_debs(tree: Path, dest: Path) -> None:
    """Two .deb files like Debian's: the wavs in -en-wav, the transcripts in -en."""
    dest.mkdir(parents=True, exist_ok=True)
    packages = (("asterisk-core-sounds-en-wav", "usr/share/asterisk"), ("asterisk-core-sounds-en", "usr/share/doc"))
    for pkg, sub in packages:
        root = dest / f"build-{pkg}"
        shutil.copytree(tree / sub, root / sub)
        (root / "DEBIAN").mkdir()
        (root / "DEBIAN" / "control").write_text(
            f"Package: {pkg}\nVersion: 1.0-1\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: t\n"
        )
        subprocess.run(["dpkg-deb", "-Zxz", "--build", str(root), str(dest / f"{pkg}_1.0-1_all.deb")],
                       check=True, capture_output=True)
        shutil.rmtree(root)


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb not installed")
def test_from_deb_files_with_dpkg_and_python_unpacker(tree, tmp_path, monkeypatch):
    debs = tmp_path / "debs"
    _build_debs(tree, debs)
    ivr_prompts.prepare(debs, tmp_path / "a", echo=None)
    a = read_manifest(tmp_path / "a" / "manifest.jsonl")
    assert {r["id"] for r in a} == set(EXPECTED_TEXT)
    # without dpkg the .deb files are unpacked in Python and give the same corpus
    real_which = shutil.which
    monkeypatch.setattr(ivr_prompts.shutil, "which", lambda cmd: None if cmd == "dpkg" else real_which(cmd))
    ivr_prompts.prepare(debs, tmp_path / "b", echo=None)
    b = read_manifest(tmp_path / "b" / "manifest.jsonl")
    strip = lambda recs: [{k: v for k, v in r.items() if k != "audio_filepath"} for r in recs]  # noqa: E731
    assert strip(a) == strip(b)


def test_from_dir_with_one_deb_is_an_error(tmp_path):
    debs = tmp_path / "debs"
    debs.mkdir()
    (debs / "asterisk-core-sounds-en_1.0-1_all.deb").write_bytes(b"!<arch>\n")
    with pytest.raises(CorpusError, match="need both asterisk-core-sounds-en-wav and asterisk-core-sounds-en"):
        ivr_prompts.prepare(debs, tmp_path / "out", echo=None)
    assert not (tmp_path / "out").exists()


def test_python_unpacker_rejects_non_deb(tmp_path):
    bad = tmp_path / "x.deb"
    bad.write_bytes(b"PK\x03\x04 a zip, not a deb")
    with pytest.raises(CorpusError, match="x.deb is not a Debian package"):
        ivr_prompts._extract_deb_python(bad, tmp_path / "dest")


def test_download_without_apt_get_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(ivr_prompts.shutil, "which", lambda cmd: None)
    with pytest.raises(CorpusError, match="apt-get not found.*pass --from DIR"):
        ivr_prompts.download_packages(tmp_path / "debs", echo=None)
    assert not (tmp_path / "debs").exists()


class _FakeApt:
    """Stands in for subprocess.run: ``apt-get download`` fails until ``apt-get update`` ran."""

    def __init__(self):
        self.calls = []
        self.updated = False

    def __call__(self, cmd, cwd=None, **kwargs):
        self.calls.append(cmd[1])
        if cmd[1] == "update":
            self.updated = True
            return subprocess.CompletedProcess(cmd, 0, "", "")
        if not self.updated:
            err = "E: Unable to locate package asterisk-core-sounds-en-wav\n"
            return subprocess.CompletedProcess(cmd, 100, "", err)
        for pkg in cmd[2:]:
            (Path(cwd) / f"{pkg}_1.6.1-1_all.deb").write_bytes(b"!<arch>\n")
        return subprocess.CompletedProcess(cmd, 0, "", "")


def test_download_as_non_root_with_stale_lists_asks_for_apt_update(tmp_path, monkeypatch):
    fake = _FakeApt()
    monkeypatch.setattr(ivr_prompts.shutil, "which", lambda cmd: "/usr/bin/" + cmd)
    monkeypatch.setattr(ivr_prompts.subprocess, "run", fake)
    monkeypatch.setattr(ivr_prompts.os, "geteuid", lambda: 1000)
    with pytest.raises(CorpusError, match="run 'sudo apt-get update' once.*or pass --from DIR"):
        ivr_prompts.download_packages(tmp_path / "debs", echo=None)
    assert fake.calls == ["download"]
    assert snapshot(tmp_path / "debs") == {}


def test_download_as_root_changes_no_package_lists_unless_asked(tmp_path, monkeypatch):
    fake = _FakeApt()
    monkeypatch.setattr(ivr_prompts.shutil, "which", lambda cmd: "/usr/bin/" + cmd)
    monkeypatch.setattr(ivr_prompts.subprocess, "run", fake)
    monkeypatch.setattr(ivr_prompts.os, "geteuid", lambda: 0)
    with pytest.raises(CorpusError, match=r"run 'sudo apt-get update' once, then retry \(or pass --apt-update\)"):
        ivr_prompts.download_packages(tmp_path / "debs", echo=None)
    assert fake.calls == ["download"] and not fake.updated


def test_download_as_root_runs_apt_update_when_asked_then_retries(tmp_path, monkeypatch):
    fake = _FakeApt()
    monkeypatch.setattr(ivr_prompts.shutil, "which", lambda cmd: "/usr/bin/" + cmd)
    monkeypatch.setattr(ivr_prompts.subprocess, "run", fake)
    monkeypatch.setattr(ivr_prompts.os, "geteuid", lambda: 0)
    got = ivr_prompts.download_packages(tmp_path / "debs", update_index=True, echo=None)
    assert fake.calls == ["download", "update", "download"]
    assert sorted(p.name for p in got.values()) == [
        "asterisk-core-sounds-en-wav_1.6.1-1_all.deb",
        "asterisk-core-sounds-en_1.6.1-1_all.deb",
    ]
    assert sorted(snapshot(tmp_path / "debs")) == sorted(p.name for p in got.values())
    # a second call finds them and runs nothing
    ivr_prompts.download_packages(tmp_path / "debs", echo=None)
    assert fake.calls == ["download", "update", "download"]


# ---- CLI ---------------------------------------------------------------------------------------------------


def test_cli_prep_ivr_prompts(tree, tmp_path):
    out = tmp_path / "ivr"
    res = CliRunner().invoke(main, ["prep", "ivr-prompts", str(out), "--from", str(tree)])
    assert res.exit_code == 0, res.output
    assert "18 utterances" in res.output and "voicemail" in res.output
    assert "skipped 7" in res.output
    res = CliRunner().invoke(main, ["prep", "ivr-prompts", str(out), "--from", str(tree)])
    assert res.exit_code == 0 and "already prepared" in res.output


def test_cli_prep_ivr_prompts_bad_source(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "ivr"
    res = CliRunner().invoke(main, ["prep", "ivr-prompts", str(out), "--from", str(empty)])
    assert res.exit_code == 2
    assert "error: no transcript file" in res.output
    assert not out.exists()


# ---- the real packages -------------------------------------------------------------------------------------

REAL_DOMAINS = [  # restated from the documented table, checked in order
    ("silence/", None), ("vm-", "voicemail"), ("conf", "conference"), ("dir-", "directory"),
    ("queue-", "call_handling"), ("agent-", "call_handling"), ("call-", "call_handling"),
    ("pbx-", "call_handling"), ("followme/", "call_handling"), ("priv", "call_handling"),
    ("screen-", "call_handling"), ("digits/", "digits"), ("letters/", "letters"), ("phonetic/", "phonetic"),
]


@pytest.fixture(scope="module")
def real_corpus(tmp_path_factory):
    try:
        tree = ivr_prompts.download(echo=None)
    except CorpusError as exc:
        pytest.skip(f"the Debian packages cannot be fetched here: {exc}")
    out = tmp_path_factory.mktemp("real") / "ivr"
    ivr_prompts.prepare(tree, out, echo=None)
    return tree, out


@pytest.mark.real_corpus
def test_real_corpus_counts_match_transcripts(real_corpus):
    tree, out = real_corpus
    [transcript] = list(tree.rglob("core-sounds-en.txt.gz"))
    [sounds] = [p for p in tree.rglob("en_US_f_Allison") if p.is_dir()]
    expected = collections.Counter()
    expected_seconds = 0.0
    for line in gzip.open(transcript, "rt").read().splitlines():
        if not line.strip() or line.startswith(";"):
            continue
        name, text = line.split(":", 1)
        domain = next((d for prefix, d in REAL_DOMAINS if name.startswith(prefix)), "general")
        if domain is None or re.fullmatch(r"(\s*(\[[^]]*\]|\([^)]*\)|<[^>]*>))+\s*", text):
            continue
        wav = sounds / f"{name}.wav"
        if not wav.is_file():
            continue
        expected[domain] += 1
        expected_seconds += sf.info(str(wav)).duration
    recs = read_manifest(out / "manifest.jsonl")
    got = collections.Counter(r["domain"] for r in recs)
    assert got == expected
    assert sum(r["duration"] for r in recs) == pytest.approx(expected_seconds, abs=0.5)
    assert len({r["id"] for r in recs}) == len(recs)
    assert {sf.info(recs[i]["audio_filepath"]).samplerate for i in (0, len(recs) // 2, -1)} == {16000}
    # each domain is split 70/10/20 by the rounding rule, give or take groups of identical sentences
    for domain, n in expected.items():
        splits = collections.Counter(r["split"] for r in recs if r["domain"] == domain)
        want = dict(zip(("train", "dev", "test"), split_counts(n, (0.7, 0.1, 0.2))))
        for split in ("dev", "test"):
            assert abs(splits[split] - want[split]) <= 2, (domain, splits, want)


def test_relative_out_dir_gives_manifest_paths_that_resolve(tree, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    manifest = ivr_prompts.prepare(tree, "rel/ivr", echo=None)
    for line in (tmp_path / "rel" / "ivr" / "manifest.jsonl").read_text().splitlines():
        raw = json.loads(line)["audio_filepath"]
        assert raw.startswith("audio/"), raw  # relative to the manifest, not to a temporary directory
    for rec in read_manifest(tmp_path / manifest):
        assert Path(rec["audio_filepath"]).is_file()
