"""The project's tokenizers: a byte-level BPE trained on a corpus, and a character-level one for tests.

Both are ``PreTrainedTokenizerFast`` objects carrying the special tokens a masked-diffusion chat model needs,
so they save and load next to a model with ``save_pretrained``/``AutoTokenizer.from_pretrained``.
"""
from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

MASK_TOKEN = "<|mdm_mask|>"
EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
EOT_TOKEN = "<|eot_id|>"  # end of one chat turn
ROLE_TOKENS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
SPECIAL_TOKENS = [PAD_TOKEN, EOS_TOKEN, MASK_TOKEN, EOT_TOKEN, *ROLE_TOKENS.values()]

# Each turn: role token, newline, content, end-of-turn. A generation prompt opens the assistant's turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|eot_id|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def _wrap(tokenizer: Tokenizer, model_max_length: int) -> PreTrainedTokenizerFast:
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        mask_token=MASK_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[EOT_TOKEN, *ROLE_TOKENS.values()],
        model_max_length=model_max_length,
        padding_side="left",  # the sampler extends prompts on the right
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 4096, model_max_length: int = 512,
                        min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``texts``; the special tokens take the first ids (pad=0, eos=1, mask=2...)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return _wrap(tokenizer, model_max_length)


def build_char_tokenizer(alphabet: str, model_max_length: int = 512) -> PreTrainedTokenizerFast:
    """One token per character of ``alphabet`` (after the special tokens); unknown characters are an error."""
    chars = sorted(set(alphabet))
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    for ch in chars:
        vocab.setdefault(ch, len(vocab))
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    return _wrap(tokenizer, model_max_length)


def special_token_ids(tokenizer) -> dict[str, int | None]:
    """The ids a model config needs from its tokenizer."""
    return dict(
        vocab_size=len(tokenizer),
        mask_token_id=tokenizer.mask_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
