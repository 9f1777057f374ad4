"""The main job's report renders in a real browser: every picture and the loss plot load with a size, their text
is readable at the page's width, held-out clips are marked and a memorised answer to another question is named."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from microemo.presets import tiny_random_config
from microemo.processing.processing_microemo import MicroEmoProcessor
from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer
from microemo.processing.visualize import draw_sample
from microemo.report import ClipResult, answers_to_other_questions, loss_plot, write_report

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "tests" / "assets"
SCREENSHOTS = ROOT / "runs" / "screenshots"


def build_report(folder: Path) -> Path:
    processor = MicroEmoProcessor.from_model_config(tiny_random_config(), build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer())
    sample = processor.prepare_sample(ASSETS / "face_speech.mp4", utterances=ASSETS / "face_speech.srt")
    picture = draw_sample(sample, folder / "face_speech.png", region_names=list(processor.clue_regions),
                          image_size=processor.image_size, patch_size=processor.patch_size, num_audio_clips=8,
                          columns=4, font_scale=1.4)  # as the demo draws it  # fmt: skip
    history = [{"step": s, "loss": 6.0 * 0.98**s} for s in range(10, 210, 10)] + [{"step": 200, "eval_loss": 5.1}]
    rows = [{"name": "quiet_describe", "answer": "She is calm."},
            {"name": "quiet_labels", "question": "Which emotions?", "answer": "calm, content"}]
    clips = [
        ClipResult("face_speech", picture, "She is surprised, then hopeful.", "She is surprised, then hopeful.",
                   ["surprised", "hopeful"], ["surprised", "hopeful"], 1.0, 1.0, ["a note"]),
        ClipResult("quiet", picture, "calm, content", "She is calm.", ["calm", "content"], ["calm", "content"], 1.0, 1.0,
                   split="held-out", flags=answers_to_other_questions("calm, content", None, rows)),
        ClipResult("broken", None, "", "", [], [], error="MediaError: broken.mp4: not a readable media file"),
    ]  # fmt: skip
    return write_report(folder / "report.html", clips, loss_plot(history, folder / "loss.png"),
                        summary={"training": "200 steps"}, commands="microemo predict <all>", held_out=True)  # fmt: skip


def test_the_report_renders_its_pictures_and_plot_in_chromium(browser, tmp_path):
    report = build_report(tmp_path)
    browser.get(report.as_uri())
    browser.set_window_size(1280, 900)
    images = browser.find_elements("tag name", "img")
    assert len(images) == 3  # the two clips' pictures and the loss plot
    for image in images:
        loaded = browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", image)
        assert loaded, image.get_attribute("alt")
        assert image.size["width"] > 200 and image.size["height"] > 100, image.get_attribute("alt")
        # The smallest text of the figure (recorded in the PNG), at the size the page shows the picture.
        natural = browser.execute_script("return arguments[0].naturalWidth", image)
        png = Image.open(io.BytesIO(base64_png(image.get_attribute("src"))))
        on_screen = float(png.info["MinTextPx"]) * image.size["width"] / natural
        assert on_screen >= 10, f"{image.get_attribute('alt')}: smallest text {on_screen:.1f} px on screen"
    text = browser.find_element("tag name", "body").text
    assert "This is a tiny demo model" in text and "failed: MediaError: broken.mp4" in text
    assert "quiet held-out" in text and "the held-out answer (not trained on)" in text
    assert "face_speech trained on" in text and "the training answer" in text
    assert "held-out loss is measured on the rows kept out of training" in text
    assert "training answer to another question ('Which emotions?', row quiet_labels)" in text
    assert "microemo predict <all>" in text  # escaped by the template, shown as written
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOTS / "report.png"))
    assert (SCREENSHOTS / "report.png").stat().st_size > 10_000
    browser.execute_script("arguments[0].scrollIntoView()", images[1])  # a clip's picture, as a reader sees it
    assert browser.save_screenshot(str(SCREENSHOTS / "report-clip.png"))


def base64_png(source: str) -> bytes:
    import base64

    assert source.startswith("data:image/png;base64,")
    return base64.b64decode(source.split(",", 1)[1])


def test_an_answer_equal_to_its_own_questions_answer_is_not_flagged():
    rows = [{"name": "a_describe", "answer": "She is calm."}, {"name": "a_labels", "question": "Which?", "answer": "calm"}]
    assert answers_to_other_questions("She is calm.", None, rows) == []
    assert answers_to_other_questions("  CALM ", None, rows)  # case and punctuation do not hide it
    assert answers_to_other_questions("calm", "Which?", rows) == []
