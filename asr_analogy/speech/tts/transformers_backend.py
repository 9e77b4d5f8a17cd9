"""Hugging Face transformers TTS models: MMS/VITS (``VitsModel``), SpeechT5, Bark — for users who have the weights.

``model`` is a local directory (``save_pretrained`` layout) or a hub id already in the local cache; with the
hub reachable and ``HF_HUB_OFFLINE`` unset a hub id is downloaded by transformers as usual. The kind is read
from ``config.json`` (``model_type``):

| kind     | example weights              | voices                                                    | output |
|----------|------------------------------|-----------------------------------------------------------|--------|
| vits     | facebook/mms-tts-eng         | ``default``; ``speaker:N`` for multi-speaker models        | model's rate (16 kHz for MMS) |
| speecht5 | microsoft/speecht5_tts (+ ``vocoder``, default microsoft/speecht5_hifigan) | ``default`` and ``random:N`` (seeded random x-vector), or a path to a 512-dim x-vector ``.npy`` | vocoder's rate (16 kHz) |
| bark     | suno/bark-small              | ``default`` (no preset) or a preset in the model's ``speaker_embeddings_path.json`` (``v2/en_speaker_6``) | 24 kHz |

Random draws (VITS noise, Bark sampling) run under ``torch.manual_seed(seed)`` inside ``torch.random.fork_rng``,
so the global random state is left alone. Speed is native for VITS (``speaking_rate``); elsewhere, and for
pitch, the base class stretches / shifts the audio. SpeechT5 needs pip ``sentencepiece`` for its tokenizer.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np

from asr_analogy.speech.tts.base import (
    BackendUnavailableError,
    TTSBackend,
    TTSError,
    VoiceNotFoundError,
    _voice_message,
    package_version,
)

KINDS = ("vits", "speecht5", "bark")
DEFAULT_VOCODER = "microsoft/speecht5_hifigan"


def _resolve_dir(model: str, what: str) -> Path:
    """A local directory for ``model``: the path itself, or the hub snapshot already in the local cache."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists() or model.startswith((".", "/", "~")):
        raise BackendUnavailableError(f"transformers: {what} {model!r} is not a model directory")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True))
    except Exception:
        pass
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model))
    except Exception as exc:
        raise BackendUnavailableError(
            f"transformers: {what} {model!r} is neither a local directory nor a hub id that can be fetched "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); download it where the hub "
            "is reachable and pass its directory"
        ) from None


def _dir_identity(path: Path) -> str:
    """sha256 over config/tokenizer files and, for weight files, their size plus first and last MiB."""
    h = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        if rel.startswith("."):
            continue
        h.update(rel.encode())
        size = file.stat().st_size
        h.update(str(size).encode())
        with open(file, "rb") as fh:
            if size <= 4 << 20:
                h.update(fh.read())
            else:
                h.update(fh.read(1 << 20))
                fh.seek(size - (1 << 20))
                h.update(fh.read())
    return h.hexdigest()[:16]


class TransformersBackend(TTSBackend):
    """transformers TTS. Options: ``model`` (required: directory or hub id), ``vocoder`` (SpeechT5 only),
    ``device`` (default "cpu"), ``threads`` (torch threads; default 1)."""

    name = "transformers"
    default_voice = "default"
    native_speed = False
    native_pitch = False

    def __init__(self, model: str | None = None, vocoder: str | None = None, device: str = "cpu",
                 threads: int = 1, **options) -> None:
        if not model:
            raise BackendUnavailableError(
                "transformers: pass the model, e.g. --option model=facebook/mms-tts-eng or a local directory"
            )
        super().__init__(model=str(model), device=device, threads=int(threads),
                         **({"vocoder": str(vocoder)} if vocoder else {}), **options)
        self.model_dir = _resolve_dir(str(model), "model")
        config_path = self.model_dir / "config.json"
        if not config_path.is_file():
            raise BackendUnavailableError(f"transformers: {self.model_dir} has no config.json")
        self.config = json.loads(config_path.read_text(encoding="utf-8"))
        self.kind = self.config.get("model_type")
        if self.kind not in KINDS:
            raise BackendUnavailableError(
                f"transformers: {self.model_dir}: model_type {self.kind!r} is not a supported TTS model "
                f"({', '.join(KINDS)})"
            )
        self.native_speed = self.kind == "vits"
        self.vocoder_dir = None
        if self.kind == "speecht5":
            self.vocoder_dir = _resolve_dir(str(vocoder or DEFAULT_VOCODER), "vocoder")
        self.device = device
        self.threads = int(threads)
        self._loaded = None

    # -- voices -------------------------------------------------------------------------------------------
    def _presets(self) -> list[str]:
        index = self.model_dir / "speaker_embeddings_path.json"
        if not index.is_file():
            return []
        return sorted(k for k in json.loads(index.read_text(encoding="utf-8")) if k != "repo_or_path")

    def list_voices(self) -> list[str]:
        if self.kind == "vits":
            n = int(self.config.get("num_speakers", 1) or 1)
            return ["default"] + ([f"speaker:{i}" for i in range(n)] if n > 1 else [])
        if self.kind == "speecht5":
            return ["default", "random:N (N = 0, 1, ...)", "PATH.npy (x-vector)"]
        return ["default", *self._presets()]

    def check_voice(self, voice: str | None) -> str:
        voice = self.default_voice if voice is None else str(voice)
        if self.kind == "speecht5":
            if voice == "default" or (voice.startswith("random:") and voice[7:].isdigit()):
                return voice
            path = Path(voice).expanduser()
            if path.suffix == ".npy":
                if not path.is_file():
                    raise VoiceNotFoundError(f"transformers: speaker embedding {path} does not exist")
                self._xvector(path)  # checks the shape
                return str(path.resolve())
        elif voice in self.list_voices():
            return voice
        raise VoiceNotFoundError(_voice_message(self.name, voice, self.list_voices()))

    def _xvector(self, path: Path) -> np.ndarray:
        dim = int(self.config.get("speaker_embedding_dim", 512))
        vec = np.load(path, allow_pickle=False).astype(np.float32).reshape(-1)
        if vec.size != dim:
            raise VoiceNotFoundError(f"transformers: speaker embedding {path} has {vec.size} values; this model needs {dim}")
        return vec

    def _speaker_embedding(self, voice: str) -> np.ndarray:
        """A (dim,) x-vector: from the .npy file, or drawn from N(0, 1) with seed N, scaled to unit norm."""
        if voice.endswith(".npy"):
            return self._xvector(Path(voice))
        dim = int(self.config.get("speaker_embedding_dim", 512))
        index = 0 if voice == "default" else int(voice.split(":", 1)[1])
        vec = np.random.default_rng([index, 5]).standard_normal(dim).astype(np.float32)
        return vec / np.linalg.norm(vec)

    # -- identity -----------------------------------------------------------------------------------------
    @functools.cached_property
    def _identity(self) -> str:
        parts = [_dir_identity(self.model_dir)]
        if self.vocoder_dir is not None:
            parts.append(_dir_identity(self.vocoder_dir))
        return "-".join(parts)

    def version(self) -> str:
        return f"transformers {package_version('transformers')}; torch {package_version('torch')}; {self.kind} {self._identity}"

    def voice_identity(self, voice: str) -> str:
        if voice.endswith(".npy"):
            return hashlib.sha256(self._xvector(Path(voice)).tobytes()).hexdigest()[:16]
        return ""

    def cache_options(self) -> dict:
        return {"kind": self.kind}

    # -- synthesis ----------------------------------------------------------------------------------------
    def _load(self):
        if self._loaded is None:
            import torch
            import transformers

            torch.set_num_threads(max(1, self.threads))
            if self.kind == "vits":
                model = transformers.VitsModel.from_pretrained(self.model_dir)
                tokenizer = transformers.AutoTokenizer.from_pretrained(self.model_dir)
                extra = None
            elif self.kind == "speecht5":
                model = transformers.SpeechT5ForTextToSpeech.from_pretrained(self.model_dir)
                try:
                    tokenizer = transformers.AutoTokenizer.from_pretrained(self.model_dir)
                except (ImportError, ValueError) as exc:
                    raise BackendUnavailableError(
                        f"transformers: the SpeechT5 tokenizer needs pip package sentencepiece ({exc})"
                    ) from None
                extra = transformers.SpeechT5HifiGan.from_pretrained(self.vocoder_dir).to(self.device).eval()
            else:
                model = transformers.BarkModel.from_pretrained(self.model_dir)
                tokenizer = transformers.AutoProcessor.from_pretrained(self.model_dir)
                extra = None
            self._loaded = (model.to(self.device).eval(), tokenizer, extra)
        return self._loaded

    def _synthesize(self, text, voice, *, seed, speed, pitch):
        import torch

        model, tokenizer, extra = self._load()
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(int(seed))
            if self.kind == "vits":
                inputs = tokenizer(text, return_tensors="pt").to(self.device)
                if inputs["input_ids"].shape[-1] == 0:
                    raise TTSError(f"transformers: the tokenizer kept no symbol of {text!r}")
                kwargs = {"speaking_rate": float(speed)}
                if voice.startswith("speaker:"):
                    kwargs["speaker_id"] = int(voice.split(":", 1)[1])
                audio = model(**inputs, **kwargs).waveform[0]
                sr = int(model.config.sampling_rate)
            elif self.kind == "speecht5":
                inputs = tokenizer(text, return_tensors="pt").to(self.device)
                emb = torch.from_numpy(self._speaker_embedding(voice))[None].to(self.device)
                audio = model.generate_speech(inputs["input_ids"], emb, vocoder=extra)
                sr = int(extra.config.sampling_rate)
            else:
                inputs = tokenizer(text, voice_preset=None if voice == "default" else voice, return_tensors="pt")
                audio = model.generate(**inputs.to(self.device), do_sample=True)[0]
                sr = int(model.generation_config.sample_rate)
        return audio.detach().float().cpu().numpy(), sr
