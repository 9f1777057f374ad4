"""The prompt / answer boundary with a real SentencePiece tokenizer built the way LLaMA's is.

No LLaMA tokenizer can be downloaded here, so the test trains one: SentencePiece BPE with LLaMA's settings
(byte fallback, a dummy prefix, split digits, whitespace kept as is, no normalisation), loaded as transformers'
`LlamaTokenizer` with LLaMA-2's special tokens (`<unk>` 0, `<s>` 1, `</s>` 2) and MicroEmo's `<video>` / `<audio>`.

The reference is LLaMA-2-chat's own training format, tokenised as Meta's code does it: for each turn,
`<s>` + SentencePiece(`[INST] {user} [/INST] {answer} `) + `</s>` (the same text Video-LLaMA's LLaMA_2 conversation
style renders). The processor tokenises the prompt and the answer separately; its ids must equal that reference,
and the prompt part must be exactly what `generate` starts from.
"""

from __future__ import annotations

import pytest

from microemo.presets import tiny_random_config
from microemo.processing.processing_microemo import MicroEmoProcessor
from microemo.processing.tiny_tokenizers import build_tiny_qformer_tokenizer

from .conftest import ASSETS

CORPUS = [
    "The subtitle of this video is <Subtitle>I can't believe it, 12 of them came back!</Subtitle>.",
    "From what clues can we infer the person's emotional state? Describe the clues, then the emotions.",
    "The person frowns and the voice is low and slow; she seems sad, tired and disappointed.",
    "He smiles, his eyebrows rise and he laughs at 3.5 seconds: he is happy and surprised.",
    "Here is the video: <Video></Video>. [INST] <<SYS>> You read emotions. <</SYS>> [/INST]",
]


@pytest.fixture(scope="module")
def sentencepiece_model(tmp_path_factory):
    spm = pytest.importorskip("sentencepiece")
    prefix = tmp_path_factory.mktemp("spm") / "llama_style"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 40), model_prefix=str(prefix), vocab_size=420, model_type="bpe",
        byte_fallback=True, split_digits=True, add_dummy_prefix=True, remove_extra_whitespaces=False,
        normalization_rule_name="identity", character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        allow_whitespace_only_pieces=True, minloglevel=2,
    )  # fmt: skip
    return spm.SentencePieceProcessor(model_file=f"{prefix}.model")


@pytest.fixture(scope="module")
def llama_tokenizer(sentencepiece_model):
    """transformers' LlamaTokenizer over the SentencePiece model's pieces (what transformers' converter extracts;
    read here through sentencepiece itself, as the converter's protobuf reader needs protobuf >= 5)."""
    from transformers import LlamaTokenizer
    from transformers.tokenization_utils_base import generate_merges

    sp = sentencepiece_model
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    tokenizer = LlamaTokenizer(vocab=vocab, merges=generate_merges(vocab), unk_token="<unk>", bos_token="<s>",
                               eos_token="</s>", pad_token="<unk>", legacy=False, padding_side="left",
                               add_bos_token=True, add_eos_token=False)  # fmt: skip
    tokenizer.add_special_tokens({"additional_special_tokens": ["<video>", "<audio>"]})
    return tokenizer


@pytest.fixture(scope="module")
def processor(llama_tokenizer):
    vocab = len(llama_tokenizer)
    config = tiny_random_config(
        video_token_id=vocab - 2, audio_token_id=vocab - 1,
        text_config=dict(model_type="llama", vocab_size=vocab, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, pad_token_id=0,
                         bos_token_id=1, eos_token_id=2),
    )  # fmt: skip
    return MicroEmoProcessor.from_model_config(config, llama_tokenizer, build_tiny_qformer_tokenizer())


def expand(ids: list[int], token: int, count: int) -> list[int]:
    """`ids` with its one `token` repeated `count` times (the processor's placeholder expansion)."""
    at = ids.index(token)
    return ids[:at] + [token] * count + ids[at + 1 :]


VIDEO = str(ASSETS / "noface_speech.mp4")
OPTIONS = dict(tokenize=True, return_dict=True, use_audio_in_video=False, utterances=[])


def test_the_tokenizer_is_llamas_sentencepiece(sentencepiece_model, llama_tokenizer):
    sp = sentencepiece_model
    # (Not a text that starts with a space: transformers' Metaspace adds no second "▁" there, SentencePiece does;
    # no piece the processor tokenises starts with one.)
    for text in ["He smiles at 12.5 seconds.", "two  spaces inside", "ünïcödé 😀 falls back to bytes"]:
        assert llama_tokenizer(text, add_special_tokens=False)["input_ids"] == sp.encode(text), text
    assert llama_tokenizer("x")["input_ids"][0] == 1  # <s> starts every sequence
    assert [sp.id_to_piece(i) for i in sp.encode("12")] == ["▁", "1", "2"]  # split digits


@pytest.mark.parametrize("system", [None, "You read emotions."])
def test_training_ids_are_the_full_texts_and_the_prompt_is_what_generate_starts_from(processor, sentencepiece_model, system):
    answer = "He smiles, his eyebrows rise: he is happy and surprised."
    question = "From what clues can we infer the person's emotional state?"
    head = [{"role": "system", "content": system}] if system else []
    user = {"role": "user", "content": [{"type": "video", "path": VIDEO}, {"type": "text", "text": question}]}
    train = processor.apply_chat_template(head + [user, {"role": "assistant", "content": answer}], **OPTIONS)
    prompt = processor.apply_chat_template(head + [user], add_generation_prompt=True, **OPTIONS)
    ids, labels = train["input_ids"][0].tolist(), train["labels"][0].tolist()
    prompt_ids = prompt["input_ids"][0].tolist()
    sp, tokenizer = sentencepiece_model, processor.tokenizer
    video = tokenizer.convert_tokens_to_ids("<video>")

    # LLaMA-2-chat's text of this example (Meta's format: a space after [/INST] and after the answer).
    block = f"<<SYS>>\n{system}\n<</SYS>>\n\n" if system else ""
    full = f"[INST] {block}Here is the video: <Video><video></Video>. {question} [/INST] {answer} </s>"
    assert ids == expand(tokenizer(full)["input_ids"], video, ids.count(video))
    # The ids before the answer are exactly the ids generation starts from ...
    assert ids[: len(prompt_ids)] == prompt_ids
    assert all(label == -100 for label in labels[: len(prompt_ids)])
    # ... and the labels are the answer as SentencePiece writes it inside that text ("▁He", ..., "▁", </s>).
    assert labels[len(prompt_ids) :] == ids[len(prompt_ids) :] == sp.encode(answer + " ") + [sp.eos_id()]
    assert tokenizer.convert_ids_to_tokens(prompt_ids[-1]) != "▁"  # no lone "▁" at the boundary
    # Before the placeholder, the prompt is SentencePiece's own encoding (after <s>).
    before = f"[INST] {block}Here is the video: <Video>"
    assert ids[: ids.index(video)] == [sp.bos_id()] + sp.encode(before)


def test_every_assistant_turn_of_a_multi_turn_conversation_is_labelled_and_nothing_else(processor, sentencepiece_model):
    turns = [("What does she feel?", "She is calm."), ("And at 3 seconds?", "Surprised, then happy.")]
    conversation = [
        {"role": "user", "content": [{"type": "video", "path": VIDEO}, {"type": "text", "text": turns[0][0]}]},
        {"role": "assistant", "content": turns[0][1]},
        {"role": "user", "content": turns[1][0]},
        {"role": "assistant", "content": turns[1][1]},
    ]
    out = processor.apply_chat_template(conversation, **OPTIONS)
    ids, labels = out["input_ids"][0].tolist(), out["labels"][0].tolist()
    sp, tokenizer = sentencepiece_model, processor.tokenizer
    supervised = [token for token, label in zip(ids, labels, strict=True) if label != -100]
    assert supervised == sp.encode(turns[0][1] + " ") + [2] + sp.encode(turns[1][1] + " ") + [2]
    assert all(label in (-100, token) for token, label in zip(ids, labels, strict=True))
    # The user turns, the <s> between the turns and the placeholders are never labelled.
    for token, label in zip(ids, labels, strict=True):
        if token in (1, tokenizer.convert_tokens_to_ids("<video>")):
            assert label == -100
    full = (f"[INST] Here is the video: <Video><video></Video>. {turns[0][0]} [/INST] {turns[0][1]} </s>"
            f"<s>[INST] {turns[1][0]} [/INST] {turns[1][1]} </s>")  # fmt: skip
    video = tokenizer.convert_tokens_to_ids("<video>")
    assert ids == expand(tokenizer(full)["input_ids"], video, ids.count(video))
