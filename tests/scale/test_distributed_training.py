"""DeepSpeed ZeRO-2 through accelerate, on 2 CPU processes (DeepSpeed's CPU accelerator, gloo): the tiny-cpu run.

The first run on a machine builds DeepSpeed's shared-memory communication op (about 3.5 minutes on 2 shared cores,
then cached in ~/.cache/torch_extensions); later runs take about 75 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from microemo.modeling_microemo import MicroEmoForConditionalGeneration
from microemo.sharding import free_port

pytest.importorskip("deepspeed", reason="the distributed extra (pip install -e '.[distributed]')")

ROOT = Path(__file__).resolve().parents[2]
ACCELERATE = Path(sys.executable).with_name("accelerate")


def test_deepspeed_zero2_on_two_cpu_processes_shards_the_optimizer_and_saves_a_loadable_model(tmp_path):
    output = tmp_path / "zero2"
    command = [str(ACCELERATE), "launch", "--config_file", str(ROOT / "training" / "accelerate" / "deepspeed-zero2-cpu.yaml"),
               "--main_process_port", str(free_port()), str(ROOT / "training" / "sft.py"),
               "--config", str(ROOT / "training" / "configs" / "tiny-cpu.yaml"), "--output_dir", str(output),
               "--num_train_epochs", "3", "--save_steps", "3", "--eval_steps", "3", "--save_total_limit", "1",
               "--disable_tqdm", "true"]  # fmt: skip
    # As the README runs it, in the activated venv: DeepSpeed's first run builds its op with the venv's ninja.
    path = os.pathsep.join([str(ACCELERATE.parent), os.environ.get("PATH", "")])
    env = dict(os.environ, PATH=path, DS_ACCELERATOR="cpu", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]

    state = json.loads((output / "trainer_state.json").read_text())
    train_rows = len(json.loads((output / "data" / "split.json").read_text())["train"])
    assert state["global_step"] == 3 * -(-train_rows // 2)  # each rank takes half of the rows per epoch
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert all(torch.isfinite(torch.tensor(losses)))
    # ZeRO-2: the optimizer state is partitioned, one part per rank.
    parts = sorted(output.glob("checkpoint-*/global_step*/*zero_pp_rank_*_optim_states.pt"))
    assert [p.name.split("zero_pp_rank_")[1][0] for p in parts] == ["0", "1"], parts
    saved = torch.load(parts[0], map_location="cpu", weights_only=False)["optimizer_state_dict"]
    assert int(saved["zero_stage"]) == 2 and set(saved["partition_count"]) == {2}
    model = MicroEmoForConditionalGeneration.from_pretrained(output)
    assert model.config.model_type == "microemo"
