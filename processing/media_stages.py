"""The two independent chains of one sample: frames (decode -> landmarks -> clue masks, or every face for the
speaker choice) and sound (waveform -> utterance spans). The frame chain runs in a thread (the face mesh in its
worker process) while the sound chain runs in the caller (``overlap.py``); the sound chain needs only the video's
length, which the probe gives before any frame is decoded. What needs both (each span's frames, the speaker
choice) comes after the join."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .audio_features import load_sample_audio
from .audio_io import SAMPLING_RATE
from .face_clues import FaceClues, FaceClueStage
from .face_tracking import FaceChoice, choice_notes, choose_face
from .overlap import run_concurrently
from .runtime import get_logger
from .utterance_spans import UtteranceStage
from .utterances import assign_frames
from .video_io import DecodedVideo, VideoInfo

logger = get_logger("processing")


def run_media_stages(
    fetch: Callable[[], DecodedVideo],
    media: DecodedVideo | VideoInfo,
    face_stage: FaceClueStage,
    utterance_stage: UtteranceStage,
    *,
    sampling: dict,
    face: str | int | None,
    landmarks: np.ndarray | None,
    clue_masks: np.ndarray | None,
    audio,
    sampling_rate: int,
    utterances,
    audio_stream: int | None,
    face_landmarker_path: str | None,
    overlap: bool,
) -> tuple[DecodedVideo, FaceClues, np.ndarray | None, list, np.ndarray, list[str], FaceChoice | None]:
    """Frames, faces and sound of one video: (decoded, clues, waveform, spans, utterance_frame_mask, notes, choice).

    ``fetch`` decodes the sampled frames; ``media`` is the video's probe (or the decoded video itself): its
    ``path``, ``duration`` and ``has_audio`` are all the sound chain reads. With ``face`` set (and no landmarks or
    masks given) the people are tracked: the frame chain finds every face, and the choice, which needs the
    sound's loudness, is made after the join; otherwise the frame chain runs the whole clue stage."""
    source = media.path or "video"
    track = face is not None and landmarks is None and clue_masks is None

    def frame_chain() -> tuple[DecodedVideo, object]:
        decoded = fetch()
        if track:
            from .face_mesh import detect_all_faces, shared_worker

            return decoded, detect_all_faces(decoded.frames, shared_worker(face_landmarker_path))
        return decoded, face_stage(decoded, landmarks=landmarks, clue_masks=clue_masks, sampling=sampling, source=source)

    def sound_chain() -> tuple:
        sound_notes: list[str] = []
        waveform = load_sample_audio(
            audio, media, sampling_rate=sampling_rate, audio_stream=audio_stream, notes=sound_notes, source=source
        )
        spans = utterance_stage(float(media.duration), utterances, waveform, sound_notes, source)
        return waveform, spans, sound_notes

    (decoded, faces), (waveform, spans, sound_notes) = run_concurrently(frame_chain, sound_chain, overlap=overlap)
    notes: list[str] = list(decoded.notes)  # what decoding could not do (frames that stop early, conversions)
    choice = None
    if track:
        choice = choose_face(faces, decoded.timestamps, waveform, SAMPLING_RATE, face=face, source=source)
        notes.extend(choice_notes(choice))
        faces = face_stage(decoded, landmarks=choice.landmarks, clue_masks=None, sampling=sampling, source=source)
    if not faces.face_found.any():
        notes.append("no face found: the local clue path is off for every frame")
        logger.warning("%s: no face found on any sampled frame; using the global frame features only", source)
    return decoded, faces, waveform, spans, assign_frames(spans, decoded.timestamps), notes + sound_notes, choice
