"""Tiny tokenizers built offline, for tests, the demo and tiny random models.

- :func:`build_tiny_llm_tokenizer`: a byte-level BPE (any text encodes, nothing is ever unknown)
  trained on a small English corpus this module ships, with ``<pad>``/``<s>``/``</s>`` at ids 0/1/2
  and the ``<video>`` / ``<audio>`` placeholders at the ids the model config expects (the top two of a
  1024-token vocabulary by default, as in ``microemo.presets.tiny_random_config``).
- :func:`build_tiny_qformer_tokenizer`: a BERT-style WordPiece (lower-case, ``[CLS] ... [SEP]``)
  that covers the timestamp text ``This frame is sampled at {t} second.`` without unknown tokens.

Real models use their own tokenizers (LLaMA-2's and ``bert-base-uncased`` + InstructBLIP's).
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

VIDEO_TOKEN = "<video>"
AUDIO_TOKEN = "<audio>"

# Text the tiny tokenizers are trained on: the prompt's own words, emotion vocabulary, descriptions
# in the style of EMER answers, and numbers. Written for this project.
_CORPUS = """
The subtitle of this video is <Subtitle> </Subtitle>. Listen to the voice and watch the face.
What clues show the emotional state of the person, and which emotions do they suggest?
Describe the facial expression, the tone of voice and the words, then infer the emotion.
In the video the person frowns, raises the eyebrows, narrows the eyes and presses the lips together.
The corners of the mouth turn up in a smile; the cheeks rise and the eyes crinkle with joy.
The voice is loud and fast, the pitch is high, and the speech sounds excited and happy.
She speaks slowly in a low and quiet voice, looks down, and seems sad, tired or disappointed.
He shakes his head, his jaw is tight and his brows are lowered: he looks angry and annoyed.
Their eyes widen and the mouth opens: surprise, then fear, then relief when the news is good.
The character says that they did not expect this, which suggests surprise and some worry.
happy joyful excited content relaxed calm neutral sad angry annoyed frustrated worried anxious
fearful nervous surprised shocked disgusted contemptuous bored confused proud grateful hopeful
embarrassed ashamed guilty lonely jealous amused pleased satisfied disappointed tense upset
I really did not expect to see you here today. Well, maybe this is good news after all.
Please infer the emotional state of the person and give your reasons.
The first frame, the second frame, the last frame. At the beginning, in the middle, at the end.
0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 25 30 40 50 60 90 100
0.0 0.5 1.0 1.5 2.0 2.5 3.0 4.5 7.2 8.1 9.9 12.3 30.6 59.9 61.0 120.4
"""


def _corpus() -> list[str]:
    lines = [line.strip() for line in _CORPUS.strip().splitlines() if line.strip()]
    # Timestamp sentences with many times: the Q-Former tokenizer must cover them without [UNK].
    lines += [f"This frame is sampled at {t / 10:.1f} second." for t in range(0, 1200, 7)]
    return lines


def build_tiny_llm_tokenizer(
    vocab_size: int = 1024,
    video_token_id: int | None = None,
    audio_token_id: int | None = None,
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer of exactly ``vocab_size`` ids with the placeholder ids asked for.

    ``video_token_id`` / ``audio_token_id`` default to ``vocab_size - 2`` / ``vocab_size - 1``.
    Ids between the trained vocabulary and the placeholders are filled with ``<reserved_k>`` special
    tokens, so the layout does not depend on how many merges the trainer found.
    """
    video_token_id = vocab_size - 2 if video_token_id is None else video_token_id
    audio_token_id = vocab_size - 1 if audio_token_id is None else audio_token_id
    if sorted((video_token_id, audio_token_id)) != [vocab_size - 2, vocab_size - 1]:
        raise ValueError(
            f"the tiny tokenizer puts <video>/<audio> at the top two ids of its vocabulary "
            f"({vocab_size - 2}, {vocab_size - 1}); got {video_token_id}, {audio_token_id}"
        )
    specials = ["<pad>", "<s>", "</s>"]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 2,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    filler = [f"<reserved_{k}>" for k in range(tokenizer.get_vocab_size(), vocab_size - 2)]
    placeholders = [VIDEO_TOKEN, AUDIO_TOKEN] if video_token_id < audio_token_id else [AUDIO_TOKEN, VIDEO_TOKEN]
    tokenizer.add_special_tokens(filler + placeholders)
    # <s> starts every sequence, like LLaMA's tokenizer.
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 1)])
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token=None,
        padding_side="left",  # generation continues from the right end of every row
        extra_special_tokens={"video_token": VIDEO_TOKEN, "audio_token": AUDIO_TOKEN},
    )
    assert wrapped.convert_tokens_to_ids(VIDEO_TOKEN) == video_token_id, "placeholder id layout broke"
    assert wrapped.convert_tokens_to_ids(AUDIO_TOKEN) == audio_token_id, "placeholder id layout broke"
    return wrapped


def build_tiny_qformer_tokenizer(vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """A BERT-style WordPiece tokenizer (lower case, ``[CLS] text [SEP]``) of at most ``vocab_size`` ids."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        padding_side="right",
    )
