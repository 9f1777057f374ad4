"""Voice-activity detection on noisy speech: silero-vad and the energy VAD side by side.

A generated set, reproducible from the seeds: clips of 2-4 English sentences spoken by espeak-ng
(several voices, speeds and pitches) with 0.7-2.0 s pauses between them, mixed with

* white noise,
* babble: six other talkers (other voices, other sentences) speaking at once, all the time,
* music: a tonal background (harmonic notes with plucked envelopes on a chord progression, a bass
  line and a sustained pad), the kind of score films and TV series put under dialogue,

at 20, 10, 5 and 0 dB SNR (speech power over the spoken parts / noise power over the clip), plus a
clean row (a 50 dB noise floor). The true utterance boundaries are the synthesized sentences'
first and last samples above 2% of their peak; pauses inside a sentence count as speech.

Scores, per detector and condition:

* utterance F1: a found span matches a true one (one to one) when both its start and its end lie
  within 0.3 s of the true ones; F1 over all spans of the condition;
* frame accuracy: the fraction of 10 ms frames labelled correctly (speech / not speech);
* seconds of compute per second of audio (median over the clips, after one warm-up call).

The post-processing defaults of ``processing/vad.py`` were chosen on a separate tuning set (another
seed, the same recipe): ``--tune`` sweeps thresholds, minimum speech / silence and padding on it and
records the sweep; the table is measured on the evaluation set with the library defaults.

    python benchmarks/bench_vad.py            # writes bench_vad.json and bench_vad.md here
    python benchmarks/bench_vad.py --tune     # also the sweep on the tuning set
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
import wave
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from scipy.signal import resample_poly

from microemo.processing import vad

HERE = Path(__file__).resolve().parent
RATE = 16_000
TOLERANCE = 0.3  # seconds, for both boundaries
GRID = 0.01  # frame-accuracy grid, seconds
SNRS = (20, 10, 5, 0)
NOISES = ("white", "babble", "music")
BABBLE_TALKERS = 6

# Our own sentences: the first 40 are spoken in the clips, the last 16 only in the babble.
SENTENCES = [
    "I told you yesterday that the meeting had been moved to Friday.",
    "Why would anyone leave the door open in the middle of winter?",
    "She laughed, and then she walked away without another word.",
    "We could take the train, or we could simply stay at home.",
    "That is the best news I have heard in a very long time.",
    "Please put the boxes by the window before you go.",
    "He said he was sorry, but I am not sure he meant it.",
    "The children were playing in the garden all afternoon.",
    "Do you really think this plan is going to work?",
    "Honestly, I have no idea what happened last night.",
    "It was raining so hard that we could barely see the road.",
    "Nobody expected the old bridge to fall down like that.",
    "If you need anything at all, just give me a call.",
    "I am tired of waiting for something that never comes.",
    "The doctor will see you in about ten minutes.",
    "They sold the house and moved to a small town by the sea.",
    "What a surprise to find you here after all these years!",
    "My brother fixed the bicycle with a piece of wire.",
    "I cannot believe you forgot my birthday again.",
    "The coffee is cold, but I will drink it anyway.",
    "We walked along the river until the sun went down.",
    "Could you tell me where the nearest station is?",
    "There is nothing more to say, so let us go home.",
    "The letter arrived three weeks after she had left.",
    "I think the music is far too loud for a Sunday morning.",
    "Your sister called while you were out.",
    "Everyone stood up when the judge walked into the room.",
    "I would rather lose the game than cheat to win it.",
    "The lights went out just as the film was getting good.",
    "Wait, did you hear that noise coming from the kitchen?",
    "We have been friends since the first day of school.",
    "It is not my fault that the car broke down again.",
    "The garden looks wonderful now that the roses are out.",
    "Tell him I will be there as soon as I can.",
    "Somebody has been reading my letters, and I want to know who.",
    "The museum is closed on Mondays and holidays.",
    "Oh no, I left my keys on the table at the restaurant.",
    "After all that, we finally found the right address.",
    "I never wanted any of this to happen.",
    "Let us sit down and talk about it calmly.",
    # babble only
    "The price of bread has gone up again this month.",
    "Turn left at the church and keep going for a mile.",
    "My grandmother grew tomatoes on the balcony every summer.",
    "The train to the airport leaves every fifteen minutes.",
    "I bought a new pair of shoes for the wedding.",
    "The cat has been sleeping on the sofa since breakfast.",
    "Remember to water the plants while I am away.",
    "The football match was cancelled because of the storm.",
    "She reads a book every week on the bus to work.",
    "We ordered pizza because nobody wanted to cook.",
    "The teacher asked us to write an essay about our town.",
    "There are too many cars on the road in the morning.",
    "He has been learning to play the piano for two years.",
    "The shop on the corner sells the best apples in town.",
    "I left the umbrella in the taxi on the way home.",
    "They painted the kitchen a bright shade of yellow.",
]
CLIP_SENTENCES, BABBLE_SENTENCES = SENTENCES[:40], SENTENCES[40:]
VOICES = [
    "en-us",
    "en-gb",
    "en-us+f2",
    "en-gb+f3",
    "en-us+m3",
    "en-029",
    "en-gb-scotland+f4",
    "en-gb-x-rp+m5",
    "en-us+f4",
]


@dataclass
class Clip:
    speech: np.ndarray  # clean speech track at RATE
    truth: list[tuple[float, float]]
    active: np.ndarray  # bool per sample: inside a true utterance
    seed: int


class Speaker:
    """espeak-ng with a per-run cache of synthesized sentences."""

    def __init__(self, workdir: Path) -> None:
        if shutil.which("espeak-ng") is None:
            raise SystemExit("bench_vad needs espeak-ng: apt-get install -y espeak-ng")
        self.workdir = workdir
        self.cache: dict[tuple, np.ndarray] = {}

    def say(self, text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
        key = (text, voice, speed, pitch)
        if key not in self.cache:
            out = self.workdir / f"s{len(self.cache)}.wav"
            command = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(out), text]
            subprocess.run(command, check=True, capture_output=True)
            with wave.open(str(out)) as handle:
                rate = handle.getframerate()
                samples = np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16)
            audio = resample_poly(samples.astype(np.float32) / 32768.0, RATE, rate).astype(np.float32)
            loud = np.flatnonzero(np.abs(audio) > 0.02 * np.abs(audio).max())
            self.cache[key] = audio[loud[0] : loud[-1] + 1]
        return self.cache[key]


def make_clip(speaker: Speaker, seed: int) -> Clip:
    """2-4 sentences by one voice, 0.3-1.5 s lead and tail, 0.7-2.0 s pauses."""
    rng = np.random.default_rng(seed)
    voice, speed, pitch = rng.choice(VOICES), int(rng.integers(135, 181)), int(rng.integers(30, 71))
    texts = rng.choice(CLIP_SENTENCES, size=int(rng.integers(2, 5)), replace=False)
    pieces = [np.zeros(int(rng.uniform(0.3, 1.5) * RATE), np.float32)]
    truth, cursor = [], pieces[0].size
    for i, text in enumerate(texts):
        utterance = speaker.say(str(text), str(voice), speed, pitch)
        truth.append((cursor / RATE, (cursor + utterance.size) / RATE))
        pieces.append(utterance)
        cursor += utterance.size
        pause = rng.uniform(0.7, 2.0) if i + 1 < len(texts) else rng.uniform(0.3, 1.5)
        pieces.append(np.zeros(int(pause * RATE), np.float32))
        cursor += pieces[-1].size
    speech = np.concatenate(pieces)
    active = np.zeros(speech.size, bool)
    for start, end in truth:
        active[round(start * RATE) : round(end * RATE)] = True
    return Clip(speech, truth, active, seed)


def babble(speaker: Speaker, length: int, rng: np.random.Generator) -> np.ndarray:
    """Six talkers at once, each a different voice reading babble-only sentences back to back."""
    total = np.zeros(length, np.float32)
    for voice in rng.choice(VOICES, size=BABBLE_TALKERS, replace=False):
        stream: list[np.ndarray] = []
        filled = 0
        while filled < length + RATE:
            text = str(rng.choice(BABBLE_SENTENCES))
            part = speaker.say(text, str(voice), int(rng.integers(140, 181)), int(rng.integers(30, 71)))
            stream += [part, np.zeros(int(rng.uniform(0.05, 0.3) * RATE), np.float32)]
            filled += part.size + stream[-1].size
        talker = np.concatenate(stream)
        offset = int(rng.integers(0, talker.size - length))
        talker = talker[offset : offset + length]
        total += talker / (np.sqrt(np.mean(talker**2)) + 1e-9)
    return total


def music(length: int, rng: np.random.Generator) -> np.ndarray:
    """A tonal background: plucked harmonic notes over a chord progression, a bass line and a pad."""
    t = np.arange(length) / RATE
    out = np.zeros(length, np.float64)
    root = 110.0 * 2 ** (rng.integers(0, 12) / 12)
    progression = [
        [0, 4, 7],
        [5, 9, 12],
        [7, 11, 14],
        [0, 4, 7],
        [9, 12, 16],
        [5, 9, 12],
        [7, 11, 14],
        [0, 4, 7],
    ]
    beat = 60.0 / rng.uniform(80, 140)
    bar = 4 * beat

    def tone(freq: float, start: float, dur: float, decay: float, harmonics: int) -> None:
        a, b = int(start * RATE), min(length, int((start + dur) * RATE))
        if a >= b:
            return
        local = t[a:b] - start
        envelope = np.minimum(local / 0.01, 1.0) * np.exp(-local / decay)
        wave_ = sum(np.sin(2 * np.pi * freq * k * local + k) / k**1.2 for k in range(1, harmonics + 1))
        out[a:b] += envelope * wave_

    for n_bar in range(int(t[-1] / bar) + 1):
        chord = progression[n_bar % len(progression)]
        bar_start = n_bar * bar
        for note in chord:  # pad: the whole chord, slow decay
            tone(2 * root * 2 ** (note / 12), bar_start, bar, 2.0, 4)
        tone(root * 2 ** (chord[0] / 12) / 2, bar_start, bar, 0.8, 6)  # bass
        for step in range(8):  # arpeggio in eighths
            note = chord[int(rng.integers(0, 3))] + 12 * int(rng.integers(0, 2))
            tone(2 * root * 2 ** (note / 12), bar_start + step * beat / 2, beat, 0.25, 8)
    return out.astype(np.float32)


def mix(clip: Clip, kind: str, snr_db: float | None, speaker: Speaker) -> np.ndarray:
    """Speech plus ``kind`` noise at ``snr_db`` (None: clean, a 50 dB white floor), speech at -26 dBFS +- 6 dB."""
    rng = np.random.default_rng(
        [clip.seed, NOISES.index(kind) if kind in NOISES else 9, 99 if snr_db is None else int(snr_db)]
    )
    speech_power = float(np.mean(clip.speech[clip.active] ** 2))
    if snr_db is None:
        noise, snr_db = rng.normal(0, 1, clip.speech.size).astype(np.float32), 50.0
    elif kind == "white":
        noise = rng.normal(0, 1, clip.speech.size).astype(np.float32)
    elif kind == "babble":
        noise = babble(speaker, clip.speech.size, rng)
    else:
        noise = music(clip.speech.size, rng)
    noise *= np.sqrt(speech_power / (np.mean(noise**2) * 10 ** (snr_db / 10)))
    mixture = clip.speech + noise
    gain = 10 ** ((-26 + rng.uniform(-6, 6)) / 20) / np.sqrt(speech_power)
    mixture *= gain
    peak = np.abs(mixture).max()
    return (mixture / peak * 0.99 if peak > 0.99 else mixture).astype(np.float32)


def utterance_counts(
    found: list[tuple[float, float]], truth: list[tuple[float, float]]
) -> tuple[int, int, int]:
    """(matched, found, true): one-to-one matches with both boundaries within TOLERANCE."""
    used: set[int] = set()
    matched = 0
    for start, end in truth:
        for j, (f_start, f_end) in enumerate(found):
            if j not in used and abs(f_start - start) <= TOLERANCE and abs(f_end - end) <= TOLERANCE:
                used.add(j)
                matched += 1
                break
    return matched, len(found), len(truth)


def frame_accuracy(
    found: list[tuple[float, float]], truth: list[tuple[float, float]], duration: float
) -> float:
    centres = (np.arange(int(duration / GRID)) + 0.5) * GRID

    def labels(spans: list[tuple[float, float]]) -> np.ndarray:
        out = np.zeros(centres.size, bool)
        for start, end in spans:
            out |= (centres >= start) & (centres < end)
        return out

    return float(np.mean(labels(found) == labels(truth)))


def f1(matched: int, found: int, true: int) -> float:
    return 2 * matched / (found + true) if found + true else 1.0


def conditions() -> list[tuple[str, int | None]]:
    return [("clean", None)] + [(kind, snr) for kind in NOISES for snr in SNRS]


def score_set(clips: list[Clip], speaker: Speaker) -> dict:
    """Frame scores of every (clip, condition, detector), with the seconds each took."""
    out: dict = {}
    for det in vad.DETECTORS:
        vad.frame_scores(np.zeros(RATE, np.float32), RATE, det)  # warm-up: model load, first-call costs
    for kind, snr in conditions():
        for clip in clips:
            audio = mix(clip, kind, snr, speaker)
            for det in vad.DETECTORS:
                start = time.perf_counter()
                scores = vad.frame_scores(audio, RATE, det)
                seconds = time.perf_counter() - start
                out[(kind, snr, clip.seed, det)] = (scores, seconds, audio.size / RATE)
    return out


def evaluate(clips: list[Clip], scored: dict, det: str, frames: bool = True, **options: float) -> dict:
    """Utterance F1 (and frame accuracy) per condition, for one detector and post-processing setting."""
    table = {}
    for kind, snr in conditions():
        counts, accuracies = np.zeros(3, int), []
        for clip in clips:
            scores, _, duration = scored[(kind, snr, clip.seed, det)]
            spans = vad.spans_from_scores(scores, duration=duration, **options)
            found = [(s.start, s.end) for s in spans]
            counts += utterance_counts(found, clip.truth)
            if frames:
                accuracies.append(frame_accuracy(found, clip.truth, duration))
        table[f"{kind}@{snr}" if snr is not None else "clean"] = {
            "utterance_f1": f1(*counts),
            "matched": int(counts[0]),
            "found": int(counts[1]),
            "true": int(counts[2]),
            **({"frame_accuracy": float(np.mean(accuracies))} if frames else {}),
        }
    return table


SWEEP = {
    "silero": {"threshold": [0.5, 0.6, 0.7, 0.8, 0.9], "gate_db": [0.0, 2.0, 3.0, 3.5, 4.0, 4.5, 5.0]},
    "energy": {"threshold": [6.0, 9.0, 12.0, 15.0]},
}
SWEEP_SHARED = {"min_speech": [0.1, 0.25], "min_silence": [0.3, 0.4, 0.5, 0.6], "pad": [0.0, 0.05, 0.1]}


def sweep(clips: list[Clip], scored: dict) -> dict:
    """Utterance F1 on the tuning set per detector and setting, best first: the mean over the
    conditions at 5 dB and above (the range the defaults are held to), then the worst of them."""
    results: dict[str, list] = {}
    for det in vad.DETECTORS:
        axes = {**SWEEP[det], **SWEEP_SHARED}
        rows = []
        for values in itertools.product(*axes.values()):
            options = dict(zip(axes, values, strict=True))
            table = evaluate(clips, scored, det, frames=False, **options)
            held = [v["utterance_f1"] for k, v in table.items() if k == "clean" or int(k.split("@")[1]) >= 5]
            at0 = [v["utterance_f1"] for k, v in table.items() if k.endswith("@0")]
            rows.append(
                {
                    **options,
                    "mean_f1_5db_up": float(np.mean(held)),
                    "min_f1_5db_up": float(min(held)),
                    "mean_f1_0db": float(np.mean(at0)),
                }
            )
        rows.sort(key=lambda r: (-round(r["mean_f1_5db_up"], 4), -r["min_f1_5db_up"], -r["mean_f1_0db"]))
        results[det] = rows
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=30, help="clips in the evaluation set")
    parser.add_argument("--tune-clips", type=int, default=12, help="clips in the tuning set")
    parser.add_argument(
        "--tune", action="store_true", help="also sweep the post-processing on the tuning set"
    )
    parser.add_argument("--output-dir", type=Path, default=HERE)
    parser.add_argument("--note", default="", help="a line on the conditions, written into the results")
    parser.add_argument("--render", type=Path, help="only rewrite the markdown from this results JSON")
    args = parser.parse_args()
    if args.render:
        (args.output_dir / "bench_vad.md").write_text(render_markdown(json.loads(args.render.read_text())))
        return
    if vad.silero_unavailable_reason():
        raise SystemExit(f"bench_vad compares both detectors: {vad.silero_unavailable_reason()}")

    result: dict = {
        "benchmark": "voice activity on noisy speech (utterance F1 at 0.3 s, frame accuracy, compute per audio second)",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        },
        "note": args.note,
        "defaults": {
            "options": vad.DEFAULT_OPTIONS,
            "thresholds": vad.DEFAULT_THRESHOLDS,
            "gate_db": vad.DEFAULT_GATE_DB,
        },
    }
    with tempfile.TemporaryDirectory() as scratch:
        speaker = Speaker(Path(scratch))
        if args.tune:
            tune_clips = [make_clip(speaker, 10_000 + i) for i in range(args.tune_clips)]
            scored = score_set(tune_clips, speaker)
            ranked = sweep(tune_clips, scored)
            result["tuning"] = {
                "clips": args.tune_clips,
                "top": {d: r[:10] for d, r in ranked.items()},
                "settings_tried": {d: len(r) for d, r in ranked.items()},
            }
            for det, rows in ranked.items():
                print(det, "best:", rows[:3])
        clips = [make_clip(speaker, i) for i in range(args.clips)]
        scored = score_set(clips, speaker)
    tables = {det: evaluate(clips, scored, det) for det in vad.DETECTORS}
    timing = {}
    for det in vad.DETECTORS:
        per_second = [
            seconds / duration for (_, _, _, d), (_, seconds, duration) in scored.items() if d == det
        ]
        timing[det] = {"median_s_per_audio_s": statistics.median(per_second), "clips": len(per_second)}
    result.update(
        clips=args.clips,
        audio_seconds_per_condition=float(sum(c.speech.size for c in clips) / RATE),
        utterances=sum(len(c.truth) for c in clips),
        results=tables,
        timing=timing,
    )
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "bench_vad.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.output_dir / "bench_vad.md").write_text(render_markdown(result))
    print(render_markdown(result))


def run(quick: bool):
    """The harness's VAD section: in full mode a fresh run on fewer clips (for the compute per audio second and a
    quality check); the recorded 30-clip table (bench_vad.md) in both modes."""
    import subprocess
    import sys

    from benchmarks.harness import Ratio, Section, Table

    recorded = json.loads((HERE / "bench_vad.json").read_text())
    fresh = None
    if not quick:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, str(Path(__file__)), "--clips", "8", "--output-dir", tmp], check=True,
                           capture_output=True)  # fmt: skip
            fresh = json.loads((Path(tmp) / "bench_vad.json").read_text())
    section = Section(
        name="vad", title="Voice activity detection (utterance spans when there are no subtitles)",
        command="python -m benchmarks --only vad (fresh 8-clip run); python benchmarks/bench_vad.py (30 clips)",
        data={"recorded": {k: recorded[k] for k in ("date", "clips", "timing", "results")}, "fresh": fresh},
    )  # fmt: skip
    rows = []
    for label, result in (("recorded, " + recorded["date"][:10] + f", {recorded['clips']} clips", recorded),
                          *((("this run, 8 clips", fresh),) if fresh else ())):
        for det, timing in result["timing"].items():
            table = result["results"][det]
            f1 = table.get("clean", {}).get("utterance_f1")
            rows.append([label, det, f"{timing['median_s_per_audio_s'] * 1e3:.2f} ms",
                         f"{1 / timing['median_s_per_audio_s']:.0f}x real time", "-" if f1 is None else f"{f1:.2f}"])  # fmt: skip
    section.tables.append(Table("Compute per second of audio (median over clips)",
                                ["run", "detector", "per audio second", "speed", "clean F1"], rows,
                                note="Quality per noise and SNR: benchmarks/bench_vad.md."))  # fmt: skip
    silero = (fresh or recorded)["timing"]["silero"]["median_s_per_audio_s"]
    section.ratios.append(Ratio(
        "silero-vad compute per audio second (informative)", silero, "none", None,
        f"silero-vad runs at {1 / silero:.0f}x real time on one thread, a small share of preparing a video "
        "(see the processing section's voice-activity row).",
    ))  # fmt: skip
    section.summary = f"silero-vad {1 / silero:.0f}x real time" + ("" if fresh else " (recorded run)") + "."
    return section


def is_default(defaults: dict, det: str, row: dict) -> bool:
    """Whether a sweep row holds the library defaults recorded in ``defaults``."""
    same = all(row[name] == value for name, value in defaults["options"].items())
    same &= row["threshold"] == defaults["thresholds"][det][0]
    return same and row.get("gate_db", defaults["gate_db"]) == defaults["gate_db"]


def render_markdown(result: dict) -> str:
    machine = result["machine"]
    tables, timing = result["results"], result["timing"]
    options = ", ".join(f"{k} {v} s" for k, v in result["defaults"]["options"].items())
    thresholds = result["defaults"]["thresholds"]
    lines = [
        "# Voice activity on noisy speech (benchmarks/bench_vad.py)",
        "",
        f"{result['date']}, {machine['platform']}, Python {machine['python']}, torch {machine['torch']} "
        f"({machine['torch_threads']} threads), {machine['cpus']} CPUs.",
        *([result["note"], ""] if result.get("note") else [""]),
        f"{result['clips']} clips ({result['utterances']} utterances, {result['audio_seconds_per_condition']:.0f} s) "
        "per condition; espeak-ng speech mixed with white noise, six-talker babble or a tonal music background. "
        f"Library defaults: {options}; thresholds silero {thresholds['silero'][0]} / {thresholds['silero'][1]} "
        f"(onset / offset probability) with the level gate at {result['defaults']['gate_db']} dB, "
        f"energy {thresholds['energy'][0]} dB over the noise floor.",
        "",
        "Utterance F1: a found span matches a true utterance when both boundaries are within 0.3 s. "
        "Frame accuracy: 10 ms frames labelled correctly.",
        "",
        "| condition | silero F1 | energy F1 | silero frame acc. | energy frame acc. | silero found / true | energy found / true |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in tables["silero"]:
        s, e = tables["silero"][name], tables["energy"][name]
        label = name.replace("@", " ") + (" dB" if "@" in name else "")
        lines.append(
            f"| {label} | {s['utterance_f1']:.3f} | {e['utterance_f1']:.3f} | {s['frame_accuracy']:.3f} | "
            f"{e['frame_accuracy']:.3f} | {s['found']} / {s['true']} | {e['found']} / {e['true']} |"
        )
    lines += [
        "",
        "Compute per second of audio (median over all clips and conditions, one process, after a warm-up call):",
        "",
        "| detector | seconds per audio second | clips |",
        "|---|---|---|",
        *(f"| {det} | {t['median_s_per_audio_s']:.4f} | {t['clips']} |" for det, t in timing.items()),
        "",
    ]
    if "tuning" in result:
        tuning = result["tuning"]
        lines += [
            f"## Tuning sweep ({tuning['clips']} clips of another seed, all conditions)",
            "",
            "Best settings by mean utterance F1 over clean and 20/10/5 dB (min F1: the worst of those conditions; "
            "ties broken by the 0 dB rows). The library defaults share min speech, min silence and pad between the "
            "detectors, so they take the best setting both detectors have in common:",
            "",
            "| detector | threshold | gate dB | min speech | min silence | pad | mean F1 | min F1 | mean F1 at 0 dB | library default |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for det, rows in tuning["top"].items():
            for row in rows[:5]:
                lines.append(
                    f"| {det} | {row['threshold']} | {row.get('gate_db', '-')} | {row['min_speech']} | "
                    f"{row['min_silence']} | {row['pad']} | {row['mean_f1_5db_up']:.3f} | {row['min_f1_5db_up']:.3f} | "
                    f"{row['mean_f1_0db']:.3f} | {'yes' if is_default(result['defaults'], det, row) else ''} |"
                )
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
