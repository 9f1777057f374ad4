"""A scripted mutation review: each mutation breaks one key map, constant, mechanism or boundary the paper's model
depends on; the tests that should notice are run against it. A mutation is *killed* when those tests fail.

    python -m benchmarks.mutations              # all of them (about 10 minutes on 2 shared CPU cores)
    python -m benchmarks.mutations --only gate  # the mutations whose name contains "gate"

Each mutation edits one file of the working tree in place and restores it afterwards (also on Ctrl-C); the tree
must be clean there first. Results: benchmarks/mutations.json (`--only` updates those entries) and a table on
stdout (docs/model.md keeps the last run's survivors and what was done about them).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = "modeling_microemo/modeling_microemo.py"
AUDIO = "modeling_microemo/imagebind_audio.py"
CONVERT = "training/convert_checkpoints.py"
PROCESSOR = "processing/processing_microemo.py"
PROMPT = "processing/prompt_tokens.py"
FEATURES = "processing/audio_features.py"
FIDELITY = "tests/fidelity"


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]
    mechanism: bool = True  # a paper mechanism / released-checkpoint fact (survivors of these need a test)


MUTATIONS = [
    Mutation("converter: Q-Former cross-attention keys not renamed", CONVERT,
             '(r"\\.crossattention\\.self\\.", ".crossattention.attention."),',
             '(r"\\.crossattention\\.self\\.", ".crossattention.self."),',
             (f"{FIDELITY}/test_video_llama.py",)),
    Mutation("converter: InstructBLIP query tokens not taken", CONVERT,
             'elif key == "query_tokens":', 'elif key == "query_tokens.weight":',
             (f"{FIDELITY}/test_instructblip_llama.py",)),
    Mutation("converter: new vocabulary rows zero, not the mean embedding", CONVERT,
             "extra = weight.float().mean(dim=0, keepdim=True)", "extra = 0 * weight.float().mean(dim=0, keepdim=True)",
             (f"{FIDELITY}/test_instructblip_llama.py",)),
    Mutation("converter: ImageBind head norm loaded into the stem norm", CONVERT,
             '"modality_heads.audio.0.weight": "head_norm.weight",', '"modality_heads.audio.0.weight": "stem_norm.weight",',
             (f"{FIDELITY}/test_imagebind_audio.py",)),
    Mutation("converter: frame positions resized by floor, not nearest", CONVERT,
             "torch.linspace(0, weight.shape[0] - 1, rows).round().long()",
             "torch.linspace(0, weight.shape[0] - 1, rows).floor().long()",
             ("tests/training/test_convert_checkpoints.py",)),
    Mutation("model: utterance windows see every frame (frame_mask for window_mask)", MODEL,
             "window_mask = utterance_frame_mask[sample_idx, utterance_idx].repeat_interleave(queries, dim=1)",
             "window_mask = frame_mask[sample_idx].repeat_interleave(queries, dim=1)",
             (f"{FIDELITY}/test_mechanisms.py", f"{FIDELITY}/test_video_llama.py")),
    Mutation("model: global window last", MODEL,
             "windows_tensor = torch.cat(windows, dim=1)  # [B, 1+U, V, Dq]\n        valid = torch.cat(window_valid, dim=1)",
             "windows_tensor = torch.cat(windows[1:] + windows[:1], dim=1)\n"
             "        valid = torch.cat(window_valid[1:] + window_valid[:1], dim=1)",
             (f"{FIDELITY}/test_mechanisms.py", f"{FIDELITY}/test_video_llama.py")),
    Mutation("model: utterance windows computed by the video Q-Former", MODEL,
             "utterance_tokens[sample_idx, utterance_idx] = self.utterance_qformer(",
             "utterance_tokens[sample_idx, utterance_idx] = self.video_qformer(",
             (f"{FIDELITY}/test_mechanisms.py",)),
    Mutation("model: frame position = sample index, not frame index", MODEL,
             "frame_positions=real[:, 1],", "frame_positions=real[:, 0],",
             (f"{FIDELITY}/test_video_llama.py",)),
    Mutation("model: image Q-Former keeps its last tokens (text) instead of the queries", MODEL,
             ").last_hidden_state[:, : self.config.num_query_tokens]",
             ").last_hidden_state[:, -self.config.num_query_tokens :]",
             (f"{FIDELITY}/test_instructblip_llama.py",)),
    Mutation("model: fusion gate sigmoid instead of tanh (opens at 0.5)", MODEL,
             "torch.tanh(self.fusion_gate)", "torch.sigmoid(self.fusion_gate)",
             (f"{FIDELITY}/test_instructblip_llama.py",)),
    Mutation("model: local clue attention between any two patches", MODEL,
             'pair_mask = torch.einsum("nrp,nrq->npq", regions, regions) > 0',
             'pair_mask = torch.einsum("nrp,nrq->npq", regions, regions) >= 0',
             (f"{FIDELITY}/test_mechanisms.py",)),
    Mutation("model: the local Q-Former pass also sees the CLS token and non-region patches", MODEL,
             "local_mask = torch.cat([torch.zeros_like(patch_mask[:, :1]), patch_mask], dim=1).long()",
             "local_mask = torch.ones_like(torch.cat([patch_mask[:, :1], patch_mask], dim=1)).long()",
             (f"{FIDELITY}/test_mechanisms.py", f"{FIDELITY}/test_instructblip_llama.py")),
    Mutation("model: audio clip positions not added", MODEL,
             "padded = padded + self.audio_position_embedding(torch.arange(num_clips, device=device))",
             "padded = padded + 0 * self.audio_position_embedding(torch.arange(num_clips, device=device))",
             (f"{FIDELITY}/test_video_llama.py",)),
    Mutation("ImageBind: patches in time-major order", AUDIO,
             "patches = self.stem_norm(patches.flatten(2).transpose(1, 2))",
             "patches = self.stem_norm(patches.transpose(2, 3).flatten(2).transpose(1, 2))",
             (f"{FIDELITY}/test_imagebind_audio.py",)),
    Mutation("ImageBind: no x20 logit scale", AUDIO,
             "embedding = nn.functional.normalize(embedding, dim=-1) * self.config.logit_scale",
             "embedding = nn.functional.normalize(embedding, dim=-1)",
             (f"{FIDELITY}/test_imagebind_audio.py",)),
    Mutation("ImageBind: the learned extra value (add_bias_kv) zeroed", AUDIO,
             "value = torch.cat([value, attn.bias_v.transpose(0, 1).expand(batch, 1, width)], dim=1)",
             "value = torch.cat([value, 0 * attn.bias_v.transpose(0, 1).expand(batch, 1, width)], dim=1)",
             (f"{FIDELITY}/test_imagebind_audio.py",)),
    Mutation("ImageBind: MLP before attention in every block (layer order)", AUDIO,
             "        attended = self.attention(self.norm_1(hidden_states))\n"
             "        hidden_states = hidden_states + self.drop_path(attended)\n"
             "        return hidden_states + self.drop_path(self.mlp(self.norm_2(hidden_states)))",
             "        hidden_states = hidden_states + self.drop_path(self.mlp(self.norm_2(hidden_states)))\n"
             "        return hidden_states + self.drop_path(self.attention(self.norm_1(hidden_states)))",
             (f"{FIDELITY}/test_imagebind_audio.py",)),
    Mutation("features: fbank normalised with std 9.138 in AST's (x - mean) / (2 std)", FEATURES,
             "mean=-4.268, std=4.569", "mean=-4.268, std=9.138",
             (f"{FIDELITY}/test_imagebind_audio.py",)),
    Mutation("processor: the prompt is labelled too", PROMPT,
             "labels += piece_ids if is_answer else [-100] * len(piece_ids)", "labels += piece_ids",
             (f"{FIDELITY}/test_llama_tokenization.py",)),
    Mutation("processor: <s> before every piece", PROMPT,
             "add_special_tokens=add_special_tokens and number == 0", "add_special_tokens=add_special_tokens",
             (f"{FIDELITY}/test_llama_tokenization.py",)),
    Mutation("template: a space after [/INST] in the prompt", PROCESSOR,
             "\"{{ ' [/INST]' }}\"", "\"{{ ' [/INST] ' }}\"",
             (f"{FIDELITY}/test_llama_tokenization.py",)),
    Mutation("template: no </s> after an answer", PROCESSOR,
             "{{ ' ' + eos_token }}", "{{ ' ' }}",
             (f"{FIDELITY}/test_llama_tokenization.py",)),
    Mutation("processor: audio tokens before the video tokens (placeholder expansion)", PROMPT,
             "return text.replace(self.video_token, video_tokens + audio_tokens)",
             "return text.replace(self.video_token, audio_tokens + video_tokens)",
             ("tests/processing/test_processor.py::test_a_video_with_sound_brings_its_audio_tokens_right_after_the_video_tokens",
              f"{FIDELITY}/test_llama_tokenization.py")),
    Mutation("optimizer: the fusion gate decays", "training/trainer.py",
             'NO_DECAY_NAMES = ("fusion_gate",)', "NO_DECAY_NAMES = ()",
             ("tests/training/test_paper_setup.py",), mechanism=False),
    Mutation("optimizer: the utterance Q-Former gets the new-modules rate", "training/loading.py",
             'NEW_MODULE_NAMES = ("local_clue_attention",)', 'NEW_MODULE_NAMES = ("local_clue_attention", "utterance_qformer")',
             ("tests/training/test_paper_setup.py",), mechanism=False),
]  # fmt: skip


def run_one(mutation: Mutation, timeout: int) -> dict:
    path = ROOT / mutation.file
    original = path.read_text(encoding="utf-8")
    if original.count(mutation.old) != 1:
        return {"name": mutation.name, "status": "stale", "detail": f"{mutation.file}: the original text occurs "
                f"{original.count(mutation.old)} times (the code moved; update the mutation)"}  # fmt: skip

    def restore(*_args) -> None:
        path.write_text(original, encoding="utf-8")
        if _args:
            sys.exit(130)

    previous = signal.signal(signal.SIGINT, restore)
    start = time.perf_counter()
    try:
        path.write_text(original.replace(mutation.old, mutation.new), encoding="utf-8")
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *mutation.tests]
        try:
            result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
            status = "survived" if result.returncode == 0 else "killed"
            tail = (result.stdout + result.stderr).strip().splitlines()[-1:] or [""]
        except subprocess.TimeoutExpired:
            status, tail = "timeout", [f"no verdict within {timeout} s"]
    finally:
        restore()
        signal.signal(signal.SIGINT, previous)
    return {"name": mutation.name, "file": mutation.file, "status": status, "mechanism": mutation.mechanism,
            "tests": list(mutation.tests), "seconds": round(time.perf_counter() - start, 1), "detail": tail[0]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=None, help="run the mutations whose name contains one of these")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per mutation")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "mutations.json")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or any(word in m.name for word in args.only)]
    dirty = subprocess.run(["git", "diff", "--quiet", "--", *sorted({m.file for m in chosen})], cwd=ROOT).returncode
    if dirty:
        parser.error("the mutated files have uncommitted changes; commit or stash them first")
    results = []
    for mutation in chosen:
        results.append(run_one(mutation, args.timeout))
        print(f"{results[-1]['status']:>9}  {mutation.name}", flush=True)
    print(f"\n{sum(r['status'] == 'killed' for r in results)} of {len(results)} killed")
    if args.only is not None and args.output.is_file():  # --only: update those entries of the recorded run
        order = [m.name for m in MUTATIONS]
        recorded = {r["name"]: r for r in json.loads(args.output.read_text())["mutations"] if r["name"] in order}
        recorded |= {r["name"]: r for r in results}  # (mutations no longer in the list are dropped)
        results = sorted(recorded.values(), key=lambda r: order.index(r["name"]))
    killed = sum(r["status"] == "killed" for r in results)
    args.output.write_text(json.dumps({"killed": killed, "total": len(results), "mutations": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
