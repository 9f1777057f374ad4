"""The person to look at, when a video shows several faces: track the faces across the sampled frames and
choose one track (the active speaker by default).

1. Tracking. Faces are linked frame to frame by the overlap (intersection over union) of their landmark
   bounding boxes, greedily, best overlap first, against each track's last seen box. Sampled frames are
   seconds apart, so a person who moves far between two frames can start a new track; a track may skip
   frames where its face was not found.
2. Choice. ``"speaker"`` (the default): the track whose mouth opening varies with the voice, scored by
   the Pearson correlation of its mouth opening (inner-lip gap over mouth width) with the speech loudness
   around each sampled frame. ``"largest"``: the track with the largest mean box. An index ``k``: the k-th
   track from the left (by mean box centre), as the picture numbers them.
3. Notes. The choice says when it is uncertain: two speakers whose scores are close, or nobody whose
   mouth moves with the voice (then the largest face is taken), or no voice at all.

Hub-shipped with the processor: numpy only, flat imports of siblings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .face_regions import NUM_LANDMARKS

# MediaPipe face-mesh indices: inner lips (upper 13, lower 14) and mouth corners (61, 291).
UPPER_INNER_LIP, LOWER_INNER_LIP, MOUTH_LEFT, MOUTH_RIGHT = 13, 14, 61, 291
FACE_CHOICES = ("speaker", "largest")
MIN_OVERLAP = 0.2  # IoU below which two boxes on consecutive sampled frames are different people
CLOSE_SCORES = 0.15  # speaker scores closer than this: the choice is uncertain
MIN_SPEAKER_SCORE = 0.3  # a correlation below this is no evidence that the mouth follows the voice
LOUDNESS_WINDOW = 0.2  # seconds of sound around a frame that its mouth opening is compared with


@dataclass
class FaceChoice:
    """The chosen face on every sampled frame, and why.

    ``landmarks`` [T, 478, 3] (NaN where the chosen person's face was not found) and ``face_found`` [T]
    are what the clue masks are built from; ``tracks`` [K, T, 478, 3] holds every person (left to right);
    ``chosen`` indexes it (-1: no face at all); ``scores`` are the speaker scores per track (None when the
    choice did not need them); ``notes`` say what was uncertain.
    """

    landmarks: np.ndarray
    face_found: np.ndarray
    tracks: np.ndarray
    chosen: int
    method: str
    scores: list[float] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def num_faces(self) -> int:
        return int(self.tracks.shape[0])


def check_face_option(face: str | int, name: str = "face") -> str | int:
    """``face`` as ``"speaker"``, ``"largest"`` or a whole number >= 0 (``"2"`` from a command line is 2)."""
    if isinstance(face, str) and face.strip().isdigit():
        face = int(face.strip())
    if isinstance(face, bool) or not (face in FACE_CHOICES or (isinstance(face, (int, np.integer)) and face >= 0)):
        raise ValueError(f"{name} must be 'speaker', 'largest' or a face index >= 0 (0 = leftmost), got {face!r}")
    return int(face) if isinstance(face, (int, np.integer)) else face


def box(landmarks: np.ndarray) -> np.ndarray:
    """(x0, y0, x1, y1) of one face's landmarks (normalised)."""
    xy = landmarks[:, :2]
    return np.array([xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max()], dtype=np.float64)


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1)."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def track_faces(faces_per_frame: Sequence[Sequence[np.ndarray]], min_overlap: float = MIN_OVERLAP) -> np.ndarray:
    """Link the faces of consecutive frames into tracks by landmark-box overlap.

    Args:
        faces_per_frame: per sampled frame, the [478, 2 or 3] landmarks of every face found on it.
        min_overlap: the least IoU with a track's last box for a face to continue that track.

    Returns:
        tracks [K, T, 478, 3] float32, NaN where a track's face was not found, ordered left to right by
        mean box centre (K = 0 when no frame has a face).
    """
    num_frames = len(faces_per_frame)
    tracks: list[dict[int, np.ndarray]] = []
    last_box: list[np.ndarray] = []
    for t, faces in enumerate(faces_per_frame):
        boxes = [box(face) for face in faces]
        pairs = sorted(
            ((overlap(last, current), k, j) for k, last in enumerate(last_box) for j, current in enumerate(boxes)),
            reverse=True,
        )
        taken_tracks, taken_faces = set(), set()
        for score, k, j in pairs:
            if score < min_overlap:
                break
            if k in taken_tracks or j in taken_faces:
                continue
            tracks[k][t] = faces[j]
            last_box[k] = boxes[j]
            taken_tracks.add(k)
            taken_faces.add(j)
        for j, face in enumerate(faces):
            if j not in taken_faces:  # nobody seen before is here: a new person
                tracks.append({t: face})
                last_box.append(boxes[j])
    out = np.full((len(tracks), num_frames, NUM_LANDMARKS, 3), np.nan, dtype=np.float32)
    for k, track in enumerate(tracks):
        for t, face in track.items():
            face = np.asarray(face, dtype=np.float32)
            out[k, t, :, : face.shape[1]] = face[:NUM_LANDMARKS, :3]
            if face.shape[1] == 2:
                out[k, t, :, 2] = 0.0
    centres = [np.nanmean((out[k, :, :, 0].max(axis=-1) + out[k, :, :, 0].min(axis=-1)) / 2) for k in range(len(tracks))]
    return out[np.argsort(centres, kind="stable")] if tracks else out


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap over mouth width per frame ([T, 478, 2|3] -> [T]; NaN where no face): scale-free."""
    gap = np.linalg.norm(landmarks[:, LOWER_INNER_LIP, :2] - landmarks[:, UPPER_INNER_LIP, :2], axis=-1)
    width = np.linalg.norm(landmarks[:, MOUTH_RIGHT, :2] - landmarks[:, MOUTH_LEFT, :2], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return gap / width


def loudness_at(waveform: np.ndarray, sampling_rate: int, times: np.ndarray, window: float = LOUDNESS_WINDOW) -> np.ndarray:
    """Root-mean-square level of the sound in ``window`` seconds around each time."""
    half = max(1, int(window * sampling_rate / 2))
    levels = []
    for t in np.asarray(times, dtype=np.float64):
        centre = int(round(t * sampling_rate))
        chunk = waveform[max(0, centre - half) : centre + half]
        levels.append(float(np.sqrt(np.mean(np.square(chunk, dtype=np.float64)))) if chunk.size else 0.0)
    return np.asarray(levels)


def speaker_scores(tracks: np.ndarray, loudness: np.ndarray) -> list[float]:
    """Per track, the correlation of its mouth opening with the loudness over the frames where it was seen
    (0 for a mouth that does not move, or a track seen on fewer than 3 frames)."""
    scores = []
    for track in tracks:
        opening = mouth_opening(track)
        seen = np.isfinite(opening)
        if seen.sum() < 3 or np.std(opening[seen]) < 1e-3 or np.std(loudness[seen]) == 0:
            scores.append(0.0)
            continue
        scores.append(float(np.corrcoef(opening[seen], loudness[seen])[0, 1]))
    return scores


def _largest(tracks: np.ndarray) -> int:
    areas = []
    for track in tracks:
        seen = np.isfinite(track[:, 0, 0])
        spans = np.ptp(track[seen, :, 0], axis=-1) * np.ptp(track[seen, :, 1], axis=-1)
        areas.append(float(spans.mean()) if spans.size else 0.0)
    return int(np.argmax(areas))


def choose_face(
    faces_per_frame: Sequence[Sequence[np.ndarray]],
    timestamps: Sequence[float] | np.ndarray,
    waveform: np.ndarray | None,
    sampling_rate: int = 16_000,
    face: str | int = "speaker",
    source: str = "video",
) -> FaceChoice:
    """Track the faces of the sampled frames and choose the person to look at (see the module docstring).

    Args:
        faces_per_frame: per frame, the landmarks of every face found (``face_mesh.detect_all_faces``).
        timestamps: the frames' times in seconds (where the loudness is measured).
        waveform: the mono sound at ``sampling_rate`` (None: no sound; ``"speaker"`` falls back to the largest).
        face: ``"speaker"``, ``"largest"`` or a face index (0 = leftmost).
        source: names the video in errors and notes.

    Raises:
        ValueError: a face index that is not among the faces found, or frames and timestamps that disagree.
    """
    face = check_face_option(face)
    timestamps = np.asarray(timestamps, dtype=np.float64)
    if len(faces_per_frame) != timestamps.size:
        raise ValueError(f"{source}: faces for {len(faces_per_frame)} frames but {timestamps.size} timestamps")
    tracks = track_faces(faces_per_frame)
    num_frames = timestamps.size
    if tracks.shape[0] == 0:
        if isinstance(face, int):
            raise ValueError(f"{source}: face={face} asked for, but no face was found on any sampled frame")
        empty = np.full((num_frames, NUM_LANDMARKS, 3), np.nan, dtype=np.float32)
        return FaceChoice(empty, np.zeros(num_frames, dtype=bool), tracks, -1, str(face))
    notes: list[str] = []
    scores = None
    if isinstance(face, int):
        if face >= tracks.shape[0]:
            raise ValueError(
                f"{source}: face={face} is out of range: {tracks.shape[0]} face(s) were tracked "
                f"(indices 0..{tracks.shape[0] - 1}, left to right)"
            )
        chosen, method = face, f"index {face}"
    elif face == "largest" or tracks.shape[0] == 1:
        chosen, method = _largest(tracks), "largest" if face == "largest" else "only face"
    else:
        chosen, method, scores, notes = _choose_speaker(tracks, timestamps, waveform, sampling_rate, source)
    landmarks = tracks[chosen]
    found = np.isfinite(landmarks[:, :, :2]).all(axis=(1, 2))
    return FaceChoice(landmarks, found, tracks, chosen, method, scores, notes)


def _choose_speaker(
    tracks: np.ndarray, timestamps: np.ndarray, waveform: np.ndarray | None, sampling_rate: int, source: str
) -> tuple[int, str, list[float] | None, list[str]]:
    count = tracks.shape[0]
    largest = _largest(tracks)
    if waveform is None or waveform.size == 0 or not np.any(waveform):
        return largest, "largest", None, [f"{count} faces and no sound: the largest face is used, not a speaker"]
    loudness = loudness_at(np.asarray(waveform, dtype=np.float32), sampling_rate, timestamps)
    scores = speaker_scores(tracks, loudness)
    order = np.argsort(scores)[::-1]
    best, second = int(order[0]), int(order[1])
    rounded = ", ".join(f"face {k}: {s:.2f}" for k, s in enumerate(scores))
    if scores[best] < MIN_SPEAKER_SCORE:
        note = f"{count} faces and none whose mouth moves with the voice ({rounded}): the largest face is used"
        return largest, "largest", scores, [note]
    notes = []
    if scores[best] - scores[second] < CLOSE_SCORES:
        notes.append(f"speaker uncertain: faces {best} and {second} score close ({rounded}); face {best} is used")
    return best, "speaker", scores, notes


def speaking_face(video, waveform: np.ndarray | None, face: str | int, face_landmarker_path: str | None = None,
                  source: str = "video") -> FaceChoice:  # fmt: skip
    """Every face on a decoded video's frames (the face-mesh worker), tracked, and the one ``face`` chooses."""
    from .face_mesh import detect_all_faces, shared_worker

    faces = detect_all_faces(video.frames, shared_worker(face_landmarker_path))
    return choose_face(faces, video.timestamps, waveform, 16_000, face=face, source=source)


def choice_notes(choice: FaceChoice) -> list[str]:
    """The notes a sample gets from its face choice: who was chosen among several, and any doubt."""
    chosen = [f"{choice.num_faces} faces tracked; face {choice.chosen} chosen ({choice.method})"] if choice.num_faces > 1 else []
    return chosen + list(choice.notes)
