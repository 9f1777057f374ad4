"""Voice-activity detection for utterance spans: silero-vad by default, an energy detector as the
dependency-free fallback, and the span post-processing both share.

Two steps, so that the benchmark (``benchmarks/bench_vad.py``) can score a detector once and try
post-processing settings on the scores:

1. :func:`frame_scores`: one score per analysis frame. ``"silero"``: silero-vad's speech
   probability per 32 ms chunk (MIT licence; the ONNX and TorchScript models ship inside the PyPI
   wheel, so nothing is downloaded; ONNX through onnxruntime by default, several times faster at
   16 kHz, where the wheel's sequence model scores every chunk in one call; the TorchScript model
   without onnxruntime). ``"energy"``: the frame level in dB above the recording's noise
   floor (its 10th percentile), 30 ms frames every 10 ms.
2. :func:`spans_from_scores`: frames at or above ``threshold`` start speech, speech lasts while the
   score stays at or above ``offset_threshold`` (hysteresis); silences shorter than
   ``min_silence`` are bridged (word and comma pauses stay inside one utterance), segments
   shorter than ``min_speech`` are dropped (clicks, breaths), each span is padded by ``pad`` on
   both sides (overlaps merge) and fitted to ``duration`` (the video's).

:func:`voice_activity` does both and says which detector ran: ``"silero"`` without silero-vad
installed falls back to ``"energy"`` and returns the reason, for the processor's notes.

Hub-shipped with the processor: numpy at import; torch and the model file only when silero runs.
The silero-vad package itself is never imported: its ``silero_vad.model`` module calls
``torch.set_num_threads(1)`` at import, which would slow every other torch op in the process. The
packaged TorchScript file is located with ``importlib.util.find_spec`` (which does not run the
package) and loaded with ``torch.jit.load``; its ``audio_forward`` gives the per-chunk
probabilities. Defaults were chosen on the benchmark's tuning set (``benchmarks/bench_vad.md``).
"""

from __future__ import annotations

import importlib.util
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio_io import resample
from .runtime import ProcessLocalCache, get_logger
from .utterances import Span

logger = get_logger("processing.vad")

DETECTORS = ("silero", "energy")
DEFAULT_DETECTOR = "silero"
SILERO_RATES = (8_000, 16_000)
SILERO_CHUNK = {8_000: 256, 16_000: 512}  # samples per probability (32 ms)
SILERO_CONTEXT = {8_000: 32, 16_000: 64}  # samples of the previous chunk the ONNX model sees before each chunk
# The same silero-vad model in the two forms its wheel ships; they give the same spans on the VAD benchmark's clips.
SILERO_RUNTIMES = ("onnx", "torchscript")
SILERO_ONNX_SEQUENCE = "silero_vad_16k_sequence.onnx"  # 16 kHz: every chunk in one call
SILERO_ONNX_CHUNK = "silero_vad.onnx"  # 8 and 16 kHz: one chunk a call, the state passed on

# Defaults chosen on the benchmark's tuning set (bench_vad.md: the best mean utterance F1 over clean
# speech and 20 / 10 / 5 dB of white noise, babble and music, for both detectors).
DEFAULT_OPTIONS = {
    "min_speech": 0.25,  # seconds: shorter segments are dropped
    "min_silence": 0.6,  # seconds: shorter silences are bridged (one utterance goes on)
    "pad": 0.1,  # seconds added before and after each span
}
# Detector-specific score thresholds: (onset, offset). silero: speech probability; energy: dB over
# the recording's noise floor.
DEFAULT_THRESHOLDS = {
    "silero": (0.9, 0.75),
    "energy": (9.0, 9.0),
}
# silero's level gate: speech also needs the level (averaged over GATE_WINDOW s) this many dB over
# the recording's background (its 10th percentile). silero-vad alone calls babble and some music
# speech; the gate keeps what sits under the dialogue out (0 turns it off). The price: speech
# less than about 4 dB over the background is not found (see the 0 dB rows of bench_vad.md).
DEFAULT_GATE_DB = 4.5
GATE_WINDOW = 0.2
_EPS = 1e-6  # seconds: frame times are sums of float hops
OPTION_NAMES = ("threshold", "offset_threshold", "gate_db", *DEFAULT_OPTIONS)

# Loaded models, per process; never stored on a processor (which must stay picklable).
# Per process and never pickled (a processor that refers to this module hashes the same everywhere).
_SILERO_MODELS = ProcessLocalCache()
_SILERO_LOCK = threading.Lock()
_WARNED: set[str] = set()


@dataclass(frozen=True)
class FrameScores:
    """Per-frame scores: frame ``i`` covers ``[i * hop, i * hop + frame]`` seconds."""

    scores: np.ndarray
    hop: float
    frame: float
    detector: str
    level: np.ndarray | None = None  # dB over the recording's background, per frame (silero's gate)


@dataclass(frozen=True)
class VoiceActivity:
    """What :func:`voice_activity` found: the spans, the detector that made them and, when the
    asked-for detector could not run, why (``fallback_reason``)."""

    spans: list[Span]
    detector: str
    requested: str
    fallback_reason: str | None = None

    @property
    def note(self) -> str:
        """One line for the processor's notes."""
        found = f"{len(self.spans)} utterance span(s) from voice activity ({_DETECTOR_NAMES[self.detector]})"
        if self.fallback_reason:
            return f"{found}; {_DETECTOR_NAMES[self.requested]} was asked for but {self.fallback_reason}"
        return found


_DETECTOR_NAMES = {"silero": "silero-vad", "energy": "energy VAD"}


def check_detector(detector: str, name: str = "detector") -> str:
    """Return ``detector`` when it is one of :data:`DETECTORS`, else raise naming the value."""
    if detector not in DETECTORS:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, DETECTORS))}, got {detector!r}")
    return detector


def check_options(options: dict | None, name: str = "vad_options") -> dict:
    """Validate post-processing overrides: known names, finite non-negative durations."""
    options = dict(options or {})
    for key, value in options.items():
        if key not in OPTION_NAMES:
            raise ValueError(f"{name}: unknown option {key!r} (expected some of {', '.join(OPTION_NAMES)})")
        if not isinstance(value, (int, float)) or not np.isfinite(value):
            raise ValueError(f"{name}: {key} must be a finite number, got {value!r}")
        if key in DEFAULT_OPTIONS and value < 0:
            raise ValueError(f"{name}: {key} must be >= 0 seconds, got {value!r}")
    return options


# --------------------------------------------------------------------------------------------------
# Detectors


def silero_unavailable_reason() -> str | None:
    """``None`` when silero-vad can run here, else a short reason (what is missing, what to install)."""
    try:
        _silero_model()
    except ImportError as error:
        return str(error)
    except Exception as error:  # noqa: BLE001 - a broken model file must not stop the processor
        return f"silero-vad could not be loaded ({type(error).__name__}: {error})"
    return None


def default_silero_runtime() -> str:
    """``"onnx"`` where onnxruntime is installed (faster: ``benchmarks/bench_vad.md``), else ``"torchscript"``."""
    return "onnx" if importlib.util.find_spec("onnxruntime") is not None else "torchscript"


def _silero_model_path(name: str = "silero_vad.jit") -> Path:
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("silero-vad is not installed (pip install silero-vad)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / name
    if not path.is_file():
        raise ImportError(f"silero-vad is installed but its model file is missing ({path})")
    return path


def _silero_model(runtime: str | None = None):
    """The loaded silero-vad model of ``runtime`` (:data:`SILERO_RUNTIMES`; default :func:`default_silero_runtime`)."""
    runtime = runtime or default_silero_runtime()
    if runtime not in SILERO_RUNTIMES:
        raise ValueError(f"silero runtime must be one of {SILERO_RUNTIMES}, got {runtime!r}")
    if runtime == "onnx":
        return _silero_onnx_session(SILERO_ONNX_SEQUENCE), _silero_onnx_session(SILERO_ONNX_CHUNK)
    with _SILERO_LOCK:
        model = _SILERO_MODELS.get("jit")
        if model is None:
            path = _silero_model_path()
            try:
                import torch
            except ImportError:
                raise ImportError("silero-vad needs torch, which is not installed") from None
            with warnings.catch_warnings():
                # torch >= 2.9 marks TorchScript deprecated; the packaged model is TorchScript.
                warnings.filterwarnings(
                    "ignore", message=".*torch.jit.load.*is deprecated", category=FutureWarning
                )
                model = torch.jit.load(str(path), map_location="cpu")
            model.eval()
            _SILERO_MODELS["jit"] = model
        return model


def _silero_onnx_session(name: str):
    with _SILERO_LOCK:
        session = _SILERO_MODELS.get(name)
        if session is None:
            path = _silero_model_path(name)
            try:
                import onnxruntime
            except ImportError:
                raise ImportError("silero-vad through ONNX needs onnxruntime (pip install onnxruntime)") from None
            options = onnxruntime.SessionOptions()
            # One 32 ms chunk at a time through a small recurrent net: more threads only add hand-offs.
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            options.log_severity_level = 3  # graph-optimisation warnings about the packaged files are not for users
            session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
            _SILERO_MODELS[name] = session
        return session


def _silero_onnx_probs(sessions, waveform: np.ndarray, sampling_rate: int) -> np.ndarray:
    """Per-chunk speech probabilities from the ONNX models, as the TorchScript model's ``audio_forward`` gives them:
    the tail zero-padded to a whole chunk, the recurrent state from zeros, and each chunk preceded by the last
    samples of the one before (64 at 16 kHz, 32 at 8 kHz; zeros before the first), as silero-vad's own ONNX
    wrapper feeds it. At 16 kHz the sequence model takes every chunk in one call; at 8 kHz the chunk model is
    called once per chunk."""
    sequence, chunked = sessions
    chunk, context = SILERO_CHUNK[sampling_rate], SILERO_CONTEXT[sampling_rate]
    count = -(-waveform.size // chunk)
    padded = np.zeros(context + count * chunk, np.float32)
    padded[context : context + waveform.size] = waveform
    windows = np.lib.stride_tricks.sliding_window_view(padded, context + chunk)[::chunk][:count]
    if sampling_rate == 16_000:
        zeros = np.zeros((1, 1, 128), np.float32)
        return sequence.run(None, {"input": np.ascontiguousarray(windows), "h": zeros, "c": zeros})[0].astype(np.float64)
    state = np.zeros((2, 1, 128), np.float32)
    rate = np.array(sampling_rate, dtype=np.int64)
    probs = np.empty(count, np.float64)
    for index in range(count):
        output, state = chunked.run(None, {"input": windows[index][None], "state": state, "sr": rate})
        probs[index] = output[0, 0]
    return probs


def _silero_scores(waveform: np.ndarray, sampling_rate: int, runtime: str | None = None) -> FrameScores:
    if sampling_rate not in SILERO_RATES:
        waveform = resample(waveform, sampling_rate, 16_000)
        sampling_rate = 16_000
    chunk = SILERO_CHUNK[sampling_rate]
    runtime = runtime or default_silero_runtime()
    model = _silero_model(runtime)
    if waveform.size < chunk:  # shorter than one probability: no speech to find
        return FrameScores(np.zeros(0), chunk / sampling_rate, chunk / sampling_rate, "silero", np.zeros(0))
    if runtime == "onnx":
        probs = _silero_onnx_probs(model, np.ascontiguousarray(waveform, dtype=np.float32), sampling_rate)
    else:
        import torch

        with _SILERO_LOCK, torch.inference_mode():
            # audio_forward pads the tail to a whole chunk and resets the recurrent state first.
            probs = model.audio_forward(torch.from_numpy(np.ascontiguousarray(waveform))[None], sampling_rate)
        probs = probs[0].float().numpy().astype(np.float64)
    seconds = chunk / sampling_rate
    return FrameScores(
        probs, seconds, seconds, "silero", _background_level(waveform, chunk, probs.size, seconds)
    )


def _background_level(waveform: np.ndarray, chunk: int, count: int, seconds: float) -> np.ndarray:
    """Per-chunk level in dB over the recording's background (the 10th percentile), the power
    averaged over GATE_WINDOW seconds around each chunk."""
    padded = np.zeros(count * chunk, np.float64)
    padded[: min(waveform.size, padded.size)] = waveform[: padded.size]
    power = np.mean(padded.reshape(count, chunk) ** 2, axis=1)
    width = max(1, round(GATE_WINDOW / seconds))
    smooth = np.convolve(power, np.ones(width) / width, mode="same")
    level = 10 * np.log10(smooth + 1e-12)
    return level - np.percentile(level, 10) if level.size else level


def _energy_scores(
    waveform: np.ndarray, sampling_rate: int, frame_seconds: float = 0.03, hop_seconds: float = 0.01
) -> FrameScores:
    frame = max(1, int(frame_seconds * sampling_rate))
    hop = max(1, int(hop_seconds * sampling_rate))
    if waveform.size < frame:
        return FrameScores(np.zeros(0), hop / sampling_rate, frame / sampling_rate, "energy")
    count = 1 + (waveform.size - frame) // hop
    index = np.arange(frame)[None, :] + hop * np.arange(count)[:, None]
    energy = np.mean(waveform[index].astype(np.float64) ** 2, axis=1)
    level = 10 * np.log10(energy + 1e-12)
    scores = level - np.percentile(level, 10)
    # Never call the floor of a silent file speech: below -55 dBFS nothing is speech.
    scores[level <= -55.0] = -np.inf
    return FrameScores(scores, hop / sampling_rate, frame / sampling_rate, "energy")


def frame_scores(
    waveform: np.ndarray, sampling_rate: int = 16_000, detector: str = DEFAULT_DETECTOR, *, runtime: str | None = None
) -> FrameScores:
    """Per-frame speech scores of a mono waveform (see the module docstring). Raises ``ImportError``
    when ``detector="silero"`` cannot run here. ``runtime``: silero's ``"onnx"`` or ``"torchscript"`` model
    (default :func:`default_silero_runtime`)."""
    check_detector(detector)
    waveform = np.asarray(waveform, dtype=np.float32).reshape(-1)
    if detector == "silero":
        return _silero_scores(waveform, int(sampling_rate), runtime)
    return _energy_scores(waveform, int(sampling_rate))


# --------------------------------------------------------------------------------------------------
# Post-processing


def spans_from_scores(
    scores: FrameScores,
    *,
    threshold: float | None = None,
    offset_threshold: float | None = None,
    min_speech: float = DEFAULT_OPTIONS["min_speech"],
    min_silence: float = DEFAULT_OPTIONS["min_silence"],
    pad: float = DEFAULT_OPTIONS["pad"],
    gate_db: float = DEFAULT_GATE_DB,
    duration: float | None = None,
) -> list[Span]:
    """Speech spans (seconds) from frame scores; see the module docstring for each step."""
    default_onset, default_offset = DEFAULT_THRESHOLDS[scores.detector]
    onset = default_onset if threshold is None else float(threshold)
    if offset_threshold is None:
        offset = onset - (default_onset - default_offset)  # keep the default hysteresis width
    else:
        offset = min(float(offset_threshold), onset)
    values = np.asarray(scores.scores, dtype=np.float64)
    if scores.level is not None and gate_db > 0:
        values = np.where(scores.level >= gate_db, values, 0.0)
    end_of_audio = (values.size - 1) * scores.hop + scores.frame if values.size else 0.0
    limit = end_of_audio if duration is None else float(duration)

    # Hysteresis: a run starts at the first frame >= onset and lasts while frames stay >= offset.
    edges = np.diff(np.concatenate([[0], (values >= offset).astype(np.int8), [0]]))
    region_starts, region_ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    onsets = np.flatnonzero(values >= onset)
    runs: list[list[float]] = []
    if onsets.size:
        nearest = np.searchsorted(onsets, region_starts)
        first = onsets[np.minimum(nearest, onsets.size - 1)]
        for begin, stop, ok in zip(first, region_ends, nearest < onsets.size, strict=True):
            if ok and begin < stop:
                runs.append([begin * scores.hop, (stop - 1) * scores.hop + scores.frame])
    # Bridge short silences, then drop short segments.
    joined: list[list[float]] = []
    for run in runs:
        if joined and run[0] - joined[-1][1] < min_silence - _EPS:
            joined[-1][1] = max(joined[-1][1], run[1])
        else:
            joined.append(run)
    kept = [run for run in joined if run[1] - run[0] >= min_speech - _EPS]
    # Pad, fit to the video, merge what now overlaps.
    spans: list[Span] = []
    for start, end in kept:
        start, end = max(0.0, start - pad), min(limit, end + pad)
        if start >= end:
            continue
        if spans and start <= spans[-1].end:
            spans[-1] = Span(spans[-1].start, max(spans[-1].end, end))
        else:
            spans.append(Span(start, end))
    return spans


def voice_activity(
    waveform: np.ndarray,
    sampling_rate: int = 16_000,
    detector: str = DEFAULT_DETECTOR,
    *,
    duration: float | None = None,
    **options: float,
) -> VoiceActivity:
    """Utterance spans of a mono waveform by ``detector``, post-processed with ``options``
    (``threshold``, ``offset_threshold``, ``min_speech``, ``min_silence``, ``pad``) and fitted to
    ``duration`` seconds (default: the audio's).

    ``detector="silero"`` where silero-vad is not installed (or its model does not load) runs the
    energy detector instead and says why in ``fallback_reason`` (and once in the log).
    """
    check_detector(detector)
    options = check_options(options, "voice_activity options")
    used, reason = detector, None
    if detector == "silero":
        reason = silero_unavailable_reason()
        if reason is not None:
            used = "energy"
            if reason not in _WARNED:
                _WARNED.add(reason)
                logger.warning("%s; using the energy VAD for utterance spans", reason)
    if used != detector:
        # Thresholds are in the asked-for detector's units; the fallback keeps its own.
        options.pop("threshold", None)
        options.pop("offset_threshold", None)
    scores = frame_scores(waveform, sampling_rate, used)
    spans = spans_from_scores(scores, duration=duration, **options)
    return VoiceActivity(spans, used, detector, reason)


__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "FrameScores",
    "VoiceActivity",
    "check_detector",
    "check_options",
    "frame_scores",
    "silero_unavailable_reason",
    "spans_from_scores",
    "voice_activity",
]
