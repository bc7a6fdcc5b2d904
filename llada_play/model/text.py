"""Text in, text out: prompt encoding (plain or chat) and decoding of generations."""
from __future__ import annotations

import functools

import torch


def encode_prompt(tokenizer, prompt: str | list[dict], chat: bool = False, allow_empty: bool = False) -> torch.LongTensor:
    """Token ids of a prompt, shape (1, length). ``chat`` applies the tokenizer's chat template to a user turn
    (or to a list of messages) and opens the assistant's turn."""
    if not isinstance(prompt, (str, list)):
        raise ValueError(f"the prompt must be text, got {type(prompt).__name__}")
    if isinstance(prompt, str):
        check_text(prompt, "the prompt")
    if isinstance(prompt, str) and not prompt.strip() and not allow_empty:
        raise ValueError("the prompt is empty: give some text to continue")
    characters = len(prompt) if isinstance(prompt, str) else sum(len(str(m.get("content", ""))) for m in prompt)
    limit = getattr(tokenizer, "model_max_length", None)
    if limit is not None and limit < 10**7 and characters > limit * widest_token(tokenizer):
        raise ValueError(f"the prompt has {characters:,} characters: more than the model's context of {limit} "
                         "tokens can hold, however it is tokenized")
    if chat:
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    else:
        text = prompt
    ids = tokenize(tokenizer, text, "the prompt")
    return torch.tensor([ids], dtype=torch.long)


def tokenize(tokenizer, text, what: str, **kwargs):
    """``tokenizer(text, add_special_tokens=False, **kwargs)``: the ids of one text (or the encoding of a list);
    a text the vocabulary cannot spell (a word-level vocabulary without an unknown token, e.g. a Sudoku model's
    digits, given letters) is refused with a ValueError naming its first such character, not the tokenizer's bare
    Exception."""
    try:
        encoding = tokenizer(text, add_special_tokens=False, **kwargs)
    except Exception as err:
        if isinstance(err, ValueError):
            raise
        for piece in [text] if isinstance(text, str) else text:
            for character in dict.fromkeys(piece):
                try:
                    tokenizer(character, add_special_tokens=False)
                except Exception:
                    raise ValueError(f"{what} holds {character!r}, which this model's vocabulary has no token for; "
                                     "use the characters it was trained on") from None
        raise ValueError(f"{what} cannot be tokenized by this model's tokenizer ({err})") from None
    return encoding.input_ids if isinstance(text, str) and not kwargs else encoding


@functools.lru_cache(maxsize=8)
def widest_token(tokenizer) -> int:
    """Characters in the longest token of the vocabulary: no token spells more, so a text of n characters has at
    least n / widest tokens (a prompt too long for sure is refused before it is tokenized)."""
    return max(len(token) for token in tokenizer.get_vocab())


def first_stray_byte(text: str) -> int | None:
    """Where ``text`` first holds a byte that was not UTF-8 (Python keeps such bytes as lone surrogates, e.g. from
    a command line or a file read with errors="surrogateescape"), or None: no tokenizer takes them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return err.start
    return None


def check_text(text: str, what: str) -> None:
    """ValueError naming the place of the first stray byte in ``text``, if it has one."""
    where = first_stray_byte(text)
    if where is not None:
        raise ValueError(f"{what} is not valid UTF-8 text: the character at position {where} is not text (a stray "
                         "byte?)")


def end_of_turn_id(tokenizer) -> int | None:
    """The id of <|eot_id|>, which ends an answer of LLaDA-Instruct's chat format, or None."""
    return tokenizer.get_vocab().get("<|eot_id|>")


def stop_token_ids(tokenizer) -> set[int]:
    """Ids that end a generated answer: end-of-text, and end-of-turn where the vocabulary has it."""
    return {tokenizer.eos_token_id, end_of_turn_id(tokenizer)} - {None}


def decode_generation(tokenizer, ids: torch.Tensor, prompt_length: int, stop_at_eos: bool = True) -> str:
    """The generated part of one row as text, cut at the first end-of-text (or end-of-turn) when asked."""
    generated = ids.reshape(-1)[prompt_length:].tolist()
    if stop_at_eos:
        stops = stop_token_ids(tokenizer)
        for i, token in enumerate(generated):
            if token in stops:
                generated = generated[:i]
                break
    return tokenizer.decode(generated, skip_special_tokens=False)


def decode_partial(tokenizer, ids: torch.Tensor, prompt_length: int, mask_id: int, placeholder: str = "_") -> str:
    """The generated part of a canvas while it is being denoised: committed tokens as text, each still-masked
    position as ``placeholder``, cut at the first committed end-of-text (or end-of-turn)."""
    generated = ids.reshape(-1)[prompt_length:].tolist()
    stops = stop_token_ids(tokenizer)
    parts, run = [], []
    for token in generated:
        if token in stops:
            break
        if token == mask_id:
            if run:
                parts.append(tokenizer.decode(run, skip_special_tokens=False))
                run = []
            parts.append(placeholder)
        else:
            run.append(token)
    if run:
        parts.append(tokenizer.decode(run, skip_special_tokens=False))
    return "".join(parts)


def parse_constraints(tokenizer, spec: str, gen_length: int | None = None) -> dict[int, int]:
    """Pins for infilling from text like ``"0: Romeo, 12: love"``: each word's tokens are placed from that
    position of the generation on (the format of LLaDA's demo). Raises ValueError with the bad part."""
    pins: dict[int, int] = {}
    for part in filter(None, (p.strip() for p in (spec or "").split(","))):
        pos_text, sep, word = part.partition(":")
        if not sep or not pos_text.strip().isdigit() or not word.strip():
            raise ValueError(f"constraint {part!r} should look like 'position: word'")
        start = int(pos_text)
        # a leading space keeps word-initial BPE pieces, as the word would appear mid-sentence
        ids = tokenizer(" " + word.strip() if start > 0 else word.strip(), add_special_tokens=False).input_ids
        for offset, token in enumerate(ids):
            pos = start + offset
            if gen_length is not None and pos >= gen_length:
                raise ValueError(f"constraint {part!r} runs past the generation length {gen_length}")
            if pos in pins and pins[pos] != token:
                raise ValueError(f"constraints overlap at position {pos}")
            pins[pos] = token
    return pins


def parse_forbidden(tokenizer, spec: str) -> list[int]:
    """Token ids never to write, from text like ``"thee, thou"``: each word as it appears mid-sentence (with a
    leading space) and as it starts a line, wherever either is one token. Raises ValueError naming a word that
    is one token in neither form (forbidding its pieces would forbid far more than the word)."""
    ids: set[int] = set()
    for word in filter(None, (w.strip() for w in (spec or "").split(","))):
        forms = [tokenizer(form, add_special_tokens=False).input_ids for form in (" " + word, word)]
        single = [form[0] for form in forms if len(form) == 1]
        if not single:
            pieces = "|".join(tokenizer.convert_ids_to_tokens(forms[1]))
            raise ValueError(f"{word!r} is {len(forms[1])} tokens ({pieces}), not one: list words that are one "
                             "token each")
        ids.update(single)
    return sorted(ids)
