"""The main job's report: one self-contained HTML page (pictures embedded) of a tuned model's predictions."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ClipResult:
    """One clip of the report: what the model saw, what it said, what it should have said, and the scores."""

    name: str
    picture: Path | None
    explanation: str
    reference: str
    labels: list[str]
    reference_labels: list[str]
    precision: float | None = None
    recall: float | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def loss_plot(history: Sequence[dict], path: Path) -> Path:
    """The training (and evaluation) loss against the step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(entry["step"], entry["loss"]) for entry in history if "loss" in entry]
    evaluation = [(entry["step"], entry["eval_loss"]) for entry in history if "eval_loss" in entry]
    if not train:
        raise ValueError("the training history holds no logged loss (is logging_steps larger than the run?)")
    figure, axis = plt.subplots(figsize=(7, 3.2), dpi=110)
    axis.plot(*zip(*train, strict=True), marker="o", markersize=3, label="training loss")
    if evaluation:
        axis.plot(*zip(*evaluation, strict=True), marker="s", markersize=4, label="held-out loss")
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.set_yscale("log")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def _image(path: Path | None, alt: str) -> str:
    if path is None or not Path(path).is_file():
        return f"<p class='missing'>(no picture: {html.escape(alt)})</p>"
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


def _labels(labels: Sequence[str], reference: Sequence[str]) -> str:
    shown = [f"<span class='{'hit' if label in reference else 'miss'}'>{html.escape(label)}</span>" for label in labels]
    return " ".join(shown) or "<em>none</em>"


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def write_report(
    path: str | Path,
    clips: Sequence[ClipResult],
    loss_picture: Path,
    *,
    summary: dict[str, str],
    commands: str,
    title: str = "MicroEmo: the tiny demo model, tuned and asked about the sample clips",
) -> Path:
    """Write the report page; every picture is embedded, so the file can be mailed or opened anywhere."""
    rows = []
    for clip in clips:
        if clip.error:
            rows.append(f"<section class='clip'><h3>{html.escape(clip.name)}</h3><p class='error'>failed: "
                        f"{html.escape(clip.error)}</p></section>")  # fmt: skip
            continue
        notes = "".join(f"<li>{html.escape(note)}</li>" for note in clip.notes)
        rows.append(f"""
<section class="clip">
  <h3>{html.escape(clip.name)}</h3>
  {_image(clip.picture, f"what the model saw in {clip.name}")}
  <table>
    <tr><th>the model says</th><td>{html.escape(clip.explanation) or "<em>(nothing)</em>"}</td></tr>
    <tr><th>the training answer</th><td>{html.escape(clip.reference)}</td></tr>
    <tr><th>emotion labels</th><td>{_labels(clip.labels, clip.reference_labels)}
        &nbsp;(reference: {html.escape(", ".join(clip.reference_labels)) or "none"})</td></tr>
    <tr><th>precision / recall</th><td>{_score(clip.precision)} / {_score(clip.recall)}</td></tr>
  </table>
  <ul class="notes">{notes}</ul>
</section>""")
    facts = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in summary.items())
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }}
.warning {{ background: #fff4d6; border-left: 4px solid #e0a800; padding: .6em 1em; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
table {{ border-collapse: collapse; margin: .6em 0; }}
th {{ text-align: left; padding: .25em 1em .25em 0; vertical-align: top; white-space: nowrap; color: #555; }}
td {{ padding: .25em 0; }}
.hit {{ background: #d7f5d7; padding: 0 .3em; }} .miss {{ background: #f9dcdc; padding: 0 .3em; }}
.error {{ color: #a00; }} .notes {{ color: #666; font-size: .9em; }}
pre {{ background: #f4f4f4; padding: 1em; overflow-x: auto; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="warning"><strong>This is a tiny demo model</strong> (a few MB, random initialisation, tuned for a few minutes
on the three bundled clips with their answers). It shows the whole pipeline working end to end: the clips are
decoded, face-meshed and listened to; the model is instruction-tuned with TRL and LoRA, predicts, and is scored.
It repeats what it was taught; it says nothing about real videos and reproduces none of the paper's numbers.</p>
<h2>Run</h2><table>{facts}</table>
<h2>Training loss</h2>
{_image(loss_picture, "training loss curve")}
<h2>Predictions</h2>
{"".join(rows)}
<h2>The real thing</h2>
<pre>{html.escape(commands)}</pre>
</body></html>
"""
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path

