"""One picture of what the processor made of a video: the sampled frames with the facial clue regions
drawn over them (as the model's patch grid), and under them the timeline of the utterances, the
audio clips, the waveform and the sampled frame times.

With several faces, every tracked face gets a numbered box and the chosen one (the active speaker by
default) a thick green one. With a per-utterance timeline (a ``microemo predict --per-utterance`` row), a
band of emotion labels over time runs above the utterances, with the segments of a long video marked.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .face_regions import _convex_hull, resolve_regions
from .processing_microemo import PreparedSample

# One colour per region (RGB 0..1), cycled when there are more regions.
_COLOURS = [(0.95, 0.25, 0.2), (0.2, 0.6, 1.0), (1.0, 0.8, 0.1), (0.3, 0.85, 0.35), (0.8, 0.35, 0.95), (0.1, 0.9, 0.9)]


def draw_sample(
    sample: PreparedSample,
    output: str | os.PathLike,
    *,
    region_names: list[str],
    image_size: int,
    patch_size: int,
    num_audio_clips: int,
    clip_seconds: float = 2.0,
    title: str | None = None,
    dpi: int = 110,
    columns: int = 8,
    font_scale: float = 1.0,
    timeline: list[dict] | None = None,
    segments: list[dict] | None = None,
) -> Path:
    """Save the picture of ``sample`` to ``output`` (PNG); returns the path.

    ``columns`` frames a row (3 inches each) and ``font_scale`` set how large text is: a page that shows the
    picture 1100 px wide keeps its text at least 10 px tall with ``columns=4, font_scale=1.4`` (the report's).
    ``timeline`` ([{start, end, labels, ...}]) draws the band of emotion labels; ``segments`` ([{start, end}])
    marks a long video's segments.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    regions = resolve_regions(region_names)
    t = sample.video.frames.shape[0]
    cols = min(t, columns)
    sizes = (7 * font_scale, 8 * font_scale, 9 * font_scale)  # small, medium, large text
    rows = int(np.ceil(t / cols))
    figure = plt.figure(figsize=(3.0 * cols, 3.2 * rows + 2.4), dpi=dpi)
    try:  # closed however drawing ends: pyplot keeps every open figure (a long-running app would grow)
        heights = [3.2] * rows + [2.4]
        spec = figure.add_gridspec(rows + 1, cols, height_ratios=heights, hspace=0.25, wspace=0.05, left=0.06,
                                   right=0.99)  # fmt: skip
        for i in range(t):
            _draw_frame(figure.add_subplot(spec[i // cols, i % cols]), sample, i, regions, image_size, patch_size, sizes)
        _draw_timeline(figure.add_subplot(spec[rows, :]), sample, num_audio_clips, clip_seconds, timeline, segments,
                       sizes)  # fmt: skip
        small, large = sizes[0], sizes[2]
        handles = [Patch(color=_COLOURS[r % len(_COLOURS)], label=name) for r, name in enumerate(region_names)]
        figure.legend(handles=handles, loc="upper right", ncol=len(handles), fontsize=small, frameon=False)
        notes = "; ".join(sample.notes)
        figure.suptitle((title or str(sample.video.path or "video")) + (f"\n{notes}" if notes else ""), fontsize=large,
                        x=0.01, ha="left")  # fmt: skip
        return save_figure(figure, output)
    finally:
        plt.close(figure)


def _draw_frame(axis, sample: PreparedSample, i: int, regions: dict, image_size: int, patch_size: int, sizes) -> None:
    """Frame ``i`` as the model sees it (squared to ``image_size``), its clue patches, the regions' outlines and
    the tracked faces."""
    from matplotlib.patches import Rectangle
    from PIL import Image

    grid = image_size // patch_size
    resized = np.asarray(Image.fromarray(sample.video.frames[i]).resize((image_size, image_size), Image.BICUBIC))
    axis.imshow(resized, extent=(0, image_size, image_size, 0))
    for r in range(sample.clue_masks.shape[1]):
        colour = _COLOURS[r % len(_COLOURS)]
        for p in np.flatnonzero(sample.clue_masks[i, r]):
            y, x = divmod(int(p), grid)
            axis.add_patch(
                Rectangle(
                    (x * patch_size, y * patch_size), patch_size, patch_size,
                    facecolor=(*colour, 0.22), edgecolor=(*colour, 0.55), linewidth=0.4,
                )
            )  # fmt: skip
    if sample.landmarks is not None and sample.face_found[i]:
        xy = sample.landmarks[i, :, :2] * image_size
        axis.scatter(xy[:, 0], xy[:, 1], s=0.25, c="white", alpha=0.5, linewidths=0)
        # The regions' true outlines (convex hulls of their landmarks) over the patches they become.
        for r, parts in enumerate(regions.values()):
            for part in parts:
                hull = _convex_hull(xy[list(part)])
                if len(hull) >= 3:
                    closed = np.vstack([hull, hull[:1]])
                    axis.plot(closed[:, 0], closed[:, 1], color=_COLOURS[r % len(_COLOURS)], linewidth=1.0)
    _draw_faces(axis, getattr(sample, "face_choice", None), i, image_size, sizes[0])
    found = "face" if sample.face_found[i] else "no face"
    axis.set_title(f"t = {sample.video.timestamps[i]:.2f} s ({found})", fontsize=sizes[2])
    axis.set_xlim(0, image_size)
    axis.set_ylim(image_size, 0)
    axis.set_xticks([])
    axis.set_yticks([])


def _draw_timeline(axis, sample: PreparedSample, num_audio_clips: int, clip_seconds: float, band: list[dict] | None,
                   segments: list[dict] | None, sizes) -> None:  # fmt: skip
    """The panel under the frames: waveform, utterances, audio clips, sampled frames, and the band of per-utterance
    emotions and the segments when given."""
    from matplotlib.patches import Rectangle

    small, medium, _ = sizes
    duration = sample.video.duration
    if sample.waveform is not None:
        wave = sample.waveform
        step = max(1, wave.size // 4000)
        times = np.arange(0, wave.size, step) / 16_000
        peak = float(np.abs(wave).max()) or 1.0
        axis.plot(times, 0.5 + 0.45 * wave[::step] / peak, color="0.55", linewidth=0.5)
    for u, span in enumerate(sample.utterances):
        axis.add_patch(Rectangle((span.start, 1.15), span.end - span.start, 0.5, color=(0.2, 0.5, 0.9), alpha=0.6))
        label = span.text if len(span.text) <= 40 else span.text[:37] + "..."
        axis.text(span.start, 1.75, f"u{u + 1} {label}", fontsize=small, va="bottom")
    if sample.audio_clip_starts is not None:
        starts = sample.audio_clip_starts[:num_audio_clips]
        # One row per clip: on short audio the clips overlap and would hide each other on one row.
        spacing = 0.6 / max(len(starts), 1)
        for k, start in enumerate(starts):
            y = -0.08 - spacing * k
            axis.plot([start, start + clip_seconds], [y, y], color=(0.9, 0.45, 0.1), linewidth=2.0, solid_capstyle="butt")
    else:
        axis.text(0.01 * duration, -0.35, "no audio stream: no audio clips", fontsize=medium, color="0.3", va="center")
    if not sample.utterances:
        axis.text(0.01 * duration, 1.4, "no utterances", fontsize=medium, color="0.3", va="center")
    for stamp in sample.video.timestamps:
        axis.axvline(stamp, color="k", linewidth=0.8, linestyle=":")
    ticks, names = [-0.35, 0.5, 1.4], ["audio clips", "waveform", "utterances"]
    if band is not None:
        ticks.append(2.6)
        names.append("emotions")
        _draw_band(axis, band, small)
        if not band:
            axis.text(0.01 * duration, 2.6, "no utterances: no per-utterance emotions", fontsize=medium, color="0.3",
                      va="center")  # fmt: skip
    for segment in segments or []:
        axis.axvline(segment["end"], color=(0.6, 0.1, 0.6), linewidth=1.2, linestyle="--")
        axis.text(segment["start"], 3.15, f"segment {segment['start']:.0f}-{segment['end']:.0f} s", fontsize=small,
                  color=(0.6, 0.1, 0.6))  # fmt: skip
    axis.set_xlim(0, max(duration, 1e-3))
    axis.set_ylim(-0.75, 3.4 if band is not None or segments else 2.3)
    axis.set_yticks(ticks)
    axis.set_yticklabels(names, fontsize=small)
    axis.set_xlabel("seconds (dotted: sampled frames)", fontsize=medium)
    axis.tick_params(axis="x", labelsize=small)


def save_figure(figure, output: str | os.PathLike) -> Path:
    """Save a matplotlib figure as PNG (tight), recording in its metadata the height in pixels of its smallest
    text (``MinTextPx``), so a page can check that the text stays readable at the size it shows the picture."""
    from matplotlib.text import Text

    sizes = [text.get_fontsize() for text in figure.findobj(Text) if text.get_visible() and text.get_text().strip()]
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"MinTextPx": f"{min(sizes) * figure.dpi / 72:.2f}"} if sizes else {}
    figure.savefig(output, bbox_inches="tight", metadata=metadata)
    return output


def _draw_faces(axis, choice, frame: int, image_size: int, fontsize: float = 7) -> None:
    """Numbered boxes of every tracked face on one frame; the chosen face's box thick and green."""
    from matplotlib.patches import Rectangle

    if choice is None or choice.num_faces < 2:
        return
    for k, track in enumerate(choice.tracks):
        xy = track[frame, :, :2]
        if not np.isfinite(xy).all():
            continue
        (x0, y0), (x1, y1) = xy.min(axis=0) * image_size, xy.max(axis=0) * image_size
        chosen = k == choice.chosen
        colour = (0.1, 0.85, 0.2) if chosen else (0.85, 0.85, 0.85)
        axis.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour,
                                 linewidth=2.2 if chosen else 0.8))  # fmt: skip
        label = f"{k}: {choice.method}" if chosen else str(k)
        axis.text(x0, y0 - 2, label, color=colour, fontsize=fontsize, va="bottom", fontweight="bold" if chosen else None)


def _draw_band(axis, timeline: list[dict], fontsize: float = 7) -> None:
    """The band of emotion labels over time: one box per utterance, coloured by its first label."""
    from matplotlib.patches import Rectangle

    palette = [(0.95, 0.55, 0.2), (0.35, 0.7, 0.95), (0.55, 0.85, 0.4), (0.9, 0.45, 0.75), (0.95, 0.85, 0.3),
               (0.6, 0.55, 0.95)]  # fmt: skip
    names = sorted({entry["labels"][0] for entry in timeline if entry.get("labels")})
    for entry in timeline:
        labels = entry.get("labels") or []
        colour = palette[names.index(labels[0]) % len(palette)] if labels else (0.8, 0.8, 0.8)
        axis.add_patch(Rectangle((entry["start"], 2.3), entry["end"] - entry["start"], 0.6, color=colour, alpha=0.85))
        axis.text(entry["start"], 2.6, " " + (", ".join(labels[:2]) if labels else "-"), fontsize=fontsize, va="center",
                  clip_on=True)  # fmt: skip
