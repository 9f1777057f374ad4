"""The main job's report: one self-contained HTML page (pictures embedded) of a tuned model's predictions,
rendered from the Jinja2 template ``templates/report.html.jinja`` (autoescaped)."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from markupsafe import Markup

#: How each kind of clip is marked: trained on, held out of training (the test split), or never seen.
SPLIT_LABELS = {"train": "trained on", "held-out": "held-out", "new": "new video"}
REFERENCE_HEADINGS = {"train": "the training answer", "held-out": "the held-out answer (not trained on)"}


@dataclass
class ClipResult:
    """One clip of the report: what the model saw, what it said, what it should have said, and the scores.

    ``split`` is "train" (its answer was trained on), "held-out" (its answer is in the test split) or "new" (no
    reference). ``flags`` are warnings shown under the scores (see :func:`answers_to_other_questions`).
    """

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
    split: str = "train"
    flags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.split not in SPLIT_LABELS:
            raise ValueError(f"split of clip {self.name!r}: got {self.split!r}, expected one of {sorted(SPLIT_LABELS)}")


def _normalised(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


def answers_to_other_questions(explanation: str, question: str | None, rows: Sequence[dict]) -> list[str]:
    """Warnings for an explanation that is, word for word, the training answer of another question.

    ``rows`` are training rows (``question`` absent for the EMER question, ``answer``, ``name``); ``question`` is
    the one the clip was asked (``None``: the EMER question). A memorised answer to the wrong question can score
    full marks on labels (an emotion list where a description was asked for), so it is named, not trusted.
    """
    said = _normalised(explanation)
    if not said:
        return []
    flags = []
    for row in rows:
        if row.get("question") != question and _normalised(row.get("answer", "")) == said:
            asked = row.get("question") or "the EMER description question"
            flags.append(f"This is the training answer to another question ({asked!r}, row {row.get('name', '?')}): "
                         "the model repeats a memorised answer, so its scores here say nothing.")  # fmt: skip
    return flags


def loss_plot(history: Sequence[dict], path: Path) -> Path:
    """The training (and held-out) loss against the step, as a PNG whose text stays >= 10 px at page width."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from microemo.processing.visualize import save_figure

    train = [(entry["step"], entry["loss"]) for entry in history if "loss" in entry]
    evaluation = [(entry["step"], entry["eval_loss"]) for entry in history if "eval_loss" in entry]
    if not train:
        raise ValueError("the training history holds no logged loss (is logging_steps larger than the run?)")
    figure, axis = plt.subplots(figsize=(7, 3.2), dpi=110)
    axis.plot(*zip(*train, strict=True), marker="o", markersize=3, label="training loss")
    if evaluation:
        axis.plot(*zip(*evaluation, strict=True), marker="s", markersize=4, label="held-out loss")
    axis.set_xlabel("step", fontsize=11)
    axis.set_ylabel("loss", fontsize=11)
    axis.tick_params(labelsize=10)
    axis.set_yscale("log")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=10)
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)
    return path


def _image(path: Path | None, alt: str) -> Markup:
    from markupsafe import escape

    if path is None or not Path(path).is_file():
        return Markup("<p class='missing'>(no picture: {})</p>").format(alt)
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return Markup(f"<img alt='{escape(alt)}' src='data:image/png;base64,{data}'>")


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
    held_out: bool = False,
) -> Path:
    """Write the report page; every picture is embedded, so the file can be mailed or opened anywhere.

    ``held_out``: the loss plot has a held-out curve, and the page says in one line why it rises.
    """
    import jinja2

    environment = jinja2.Environment(loader=jinja2.PackageLoader("microemo", "templates"), autoescape=True,
                                     trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)  # fmt: skip
    page = environment.get_template("report.html.jinja").render(
        title=title, summary=summary, clips=clips, loss_picture=loss_picture, commands=commands, held_out=held_out,
        image=_image, score=_score, SPLIT_LABELS=SPLIT_LABELS, REFERENCE_HEADINGS=REFERENCE_HEADINGS,
    )  # fmt: skip
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path
