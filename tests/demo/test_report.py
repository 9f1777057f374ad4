"""The main job's report renders in a real browser: every picture and the loss plot load with a size."""

from __future__ import annotations

from pathlib import Path

from microemo.presets import tiny_random_config
from microemo.processing.processing_microemo import MicroEmoProcessor
from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer
from microemo.processing.visualize import draw_sample
from microemo.report import ClipResult, loss_plot, write_report

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "tests" / "assets"
SCREENSHOTS = ROOT / "runs" / "screenshots"


def build_report(folder: Path) -> Path:
    processor = MicroEmoProcessor.from_model_config(tiny_random_config(), build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer())
    sample = processor.prepare_sample(ASSETS / "face_speech.mp4", utterances=ASSETS / "face_speech.srt")
    picture = draw_sample(sample, folder / "face_speech.png", region_names=list(processor.clue_regions),
                          image_size=processor.image_size, patch_size=processor.patch_size, num_audio_clips=8)  # fmt: skip
    history = [{"step": s, "loss": 6.0 * 0.98**s} for s in range(10, 210, 10)] + [{"step": 200, "eval_loss": 5.1}]
    clips = [
        ClipResult("face_speech", picture, "She is surprised, then hopeful.", "She is surprised, then hopeful.",
                   ["surprised", "hopeful"], ["surprised", "hopeful"], 1.0, 1.0, ["a note"]),
        ClipResult("broken", None, "", "", [], [], error="MediaError: broken.mp4: not a readable media file"),
    ]  # fmt: skip
    return write_report(folder / "report.html", clips, loss_plot(history, folder / "loss.png"),
                        summary={"training": "200 steps"}, commands="microemo predict ...")  # fmt: skip


def test_the_report_renders_its_pictures_and_plot_in_chromium(browser, tmp_path):
    report = build_report(tmp_path)
    browser.get(report.as_uri())
    images = browser.find_elements("tag name", "img")
    assert len(images) == 2  # the clip's picture and the loss plot
    for image in images:
        loaded = browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", image)
        assert loaded, image.get_attribute("alt")
        assert image.size["width"] > 200 and image.size["height"] > 100, image.get_attribute("alt")
    text = browser.find_element("tag name", "body").text
    assert "This is a tiny demo model" in text and "failed: MediaError: broken.mp4" in text
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOTS / "report.png"))
    assert (SCREENSHOTS / "report.png").stat().st_size > 10_000
