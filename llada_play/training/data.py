"""Training data: plain-text corpora packed into fixed-length windows, and prompt/response rows for SFT."""
from __future__ import annotations

import csv
import json
import random
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ..model.text import first_stray_byte, widest_token


class DataError(ValueError):
    """Malformed or unusable training data; the message names the file (and line)."""


def read_corpus(source: str | Path | list) -> dict[str, str]:
    """name -> text for a .txt file, a directory of .txt files, or a list of those."""
    sources = source if isinstance(source, (list, tuple)) else [source]
    texts: dict[str, str] = {}
    for src in sources:
        path = Path(src)
        if path.is_dir():
            files = sorted(p for p in path.glob("*.txt") if p.name.lower() not in {"metadata.txt"})
        elif path.exists():
            files = [path]
        else:
            raise DataError(f"corpus {path} does not exist")
        for f in files:
            text = f.read_text(encoding="utf-8", errors="replace")
            broken = text.count("\ufffd")
            if broken > max(10, len(text) // 100):  # a stray byte is replaced; a file of them is not text
                raise DataError(f"corpus file {f} is not UTF-8 text: {broken:,} of {len(text):,} characters could "
                                f"not be decoded (the first: {first_bad_byte(f)})")
            if text.strip():
                texts[f.stem] = text
    if not texts:
        raise DataError(f"no text found in {source}")
    return texts


def split_documents(texts: dict[str, str], held_out_fraction: float = 0.05, seed: int = 0):
    """Hold out whole documents (at least one), chosen by a seeded shuffle of the sorted names."""
    names = sorted(texts)
    if len(names) < 2:
        raise DataError("need at least two documents to hold one out")
    rng = random.Random(seed)
    rng.shuffle(names)
    n_val = max(1, round(held_out_fraction * len(names)))
    val = sorted(names[:n_val])
    train = sorted(names[n_val:])
    return {n: texts[n] for n in train}, {n: texts[n] for n in val}


def pack_tokens(tokenizer, texts, seq_len: int) -> torch.LongTensor:
    """One id stream: every document followed by end-of-text."""
    ids: list[int] = []
    for text in texts:
        # whole documents are tokenized, then cut into windows: the model's length limit does not apply here
        ids.extend(tokenizer(text, add_special_tokens=False, verbose=False).input_ids)
        ids.append(tokenizer.eos_token_id)
    if len(ids) <= seq_len:
        raise DataError(f"the corpus has {len(ids)} tokens, fewer than one sequence of {seq_len}")
    return torch.tensor(ids, dtype=torch.long)


@dataclass
class PackedBatches:
    """Random windows of ``seq_len`` tokens from a packed stream (order set by the generator)."""

    tokens: torch.LongTensor
    seq_len: int
    batch_size: int

    def next_batch(self, generator: torch.Generator) -> dict:
        starts = torch.randint(0, len(self.tokens) - self.seq_len, (self.batch_size,), generator=generator)
        windows = torch.stack([self.tokens[s:s + self.seq_len] for s in starts.tolist()])
        return {"input_ids": windows}

    def fixed_batches(self, count: int, seed: int = 1234) -> list[dict]:
        """The same ``count`` batches every call: for evaluation."""
        g = torch.Generator().manual_seed(seed)
        return [self.next_batch(g) for _ in range(count)]

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)


@dataclass
class DocumentBatches(PackedBatches):
    """Windows of ``seq_len`` tokens that each start at a document's start: a random document, then the ones after
    it in the stream until the window is full (the last one cut). Short documents (few-shot prompts) are then seen
    whole from their first token, as they are asked, which random windows of a packed stream would cut."""

    starts: torch.LongTensor = None  # where each document of ``tokens`` starts (from_texts finds them)

    @classmethod
    def from_texts(cls, tokenizer, texts, seq_len: int, batch_size: int) -> "DocumentBatches":
        tokens = pack_tokens(tokenizer, texts, seq_len)
        ends = (tokens == tokenizer.eos_token_id).nonzero()[:, 0]
        starts = torch.cat([torch.zeros(1, dtype=torch.long), ends[:-1] + 1])
        starts = starts[starts + seq_len <= len(tokens)]  # a window from each start fits in the stream
        if len(starts) == 0:
            raise DataError(f"no document starts a full window of {seq_len} tokens")
        return cls(tokens, seq_len, batch_size, starts)

    def next_batch(self, generator: torch.Generator) -> dict:
        rows = torch.randint(0, len(self.starts), (self.batch_size,), generator=generator)
        offsets = self.starts[rows][:, None] + torch.arange(self.seq_len)
        return {"input_ids": self.tokens[offsets]}


def _rows_from_file(path: Path, on_error: str):
    suffix = path.suffix.lower()
    json_array = suffix == ".json" and path.read_text(encoding="utf-8").lstrip()[:1] == "["
    if suffix in {".jsonl", ".json"} and not json_array:
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    yield _bad(path, lineno, f"not valid JSON ({err.msg})", on_error)
                    continue
                yield path, lineno, row
    elif suffix == ".json":
        for i, row in enumerate(json.loads(path.read_text()), 1):
            yield path, i, row
    elif suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as f:
            for lineno, row in enumerate(csv.DictReader(f), 2):
                yield path, lineno, row
    elif suffix in {".parquet", ".arrow"}:
        import datasets

        kind = "parquet" if suffix == ".parquet" else "arrow"
        for i, row in enumerate(datasets.load_dataset(kind, data_files=str(path), split="train"), 1):
            yield path, i, row
    else:
        raise DataError(f"{path}: unsupported SFT file type {suffix!r} (use .jsonl, .json, .csv or .parquet)")


def _bad(path, lineno, why, on_error):
    message = f"{path}, line {lineno}: {why}"
    if on_error == "stop":
        raise DataError(message)
    warnings.warn(f"skipping {message}", stacklevel=3)
    return None


def _read_rows(path: Path, on_error: str):
    """The rows of ``path``; a file that is not UTF-8 or a broken JSON array is refused naming the file."""
    try:
        yield from _rows_from_file(path, on_error)
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text ({first_bad_byte(path)}); save it as UTF-8") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not a valid JSON array (line {err.lineno}, column {err.colno}: {err.msg})") from None


def first_bad_byte(path: Path) -> str:
    """Where the first byte that is not UTF-8 sits in ``path``: "line 3: byte 0xe9 at column 16"."""
    with path.open("rb") as f:
        for lineno, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as err:
                return f"line {lineno}: byte {line[err.start]:#04x} at column {err.start + 1}"
    return "an incomplete character at the end"


def load_sft_rows(path: str | Path, on_error: str = "stop") -> list[list[dict]]:
    """Read SFT rows as chat message lists. A row has ``prompt``/``response`` fields or ``messages``
    (the last message is the assistant's answer). ``on_error``: "stop" raises on the first malformed row,
    "skip" warns and drops it; both name the file and line."""
    if on_error not in {"stop", "skip"}:
        raise ValueError(f"on_error must be 'stop' or 'skip', got {on_error!r}")
    path = Path(path)
    if not path.exists():
        raise DataError(f"SFT data {path} does not exist")
    conversations = []
    for item in _read_rows(path, on_error):
        if item is None:
            continue
        _, lineno, row = item
        messages = _row_to_messages(row)
        if isinstance(messages, str):
            _bad(path, lineno, messages, on_error)
            continue
        conversations.append(messages)
    if not conversations:
        raise DataError(f"{path} holds no usable prompt/response rows")
    return conversations


def _row_to_messages(row) -> list[dict] | str:
    """The row as messages, or a string saying what is wrong with it."""
    if not isinstance(row, dict):
        return "a row must be an object with prompt/response or messages"
    if "messages" in row and row["messages"] is not None:
        messages = row["messages"]
        if isinstance(messages, str):
            try:
                messages = json.loads(messages)
            except json.JSONDecodeError:
                return "messages is not a list"
        if not isinstance(messages, list) or not messages:
            return "messages must be a non-empty list"
        for i, m in enumerate(messages, 1):
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                return "each message needs role and content"
            if m["role"] not in ROLES:
                return f"message {i}: role must be one of {list(ROLES)}, got {m['role']!r}"
            if not isinstance(m["content"], str):
                return f"message {i}: content must be text, got {type(m['content']).__name__}"
            if first_stray_byte(m["content"]) is not None:
                return f"message {i}: content is not valid UTF-8 text"
        if messages[-1]["role"] != "assistant" or not messages[-1]["content"].strip():
            return "the last message must be a non-empty assistant response"
        return [{"role": m["role"], "content": m["content"]} for m in messages]
    prompt, response = row.get("prompt"), row.get("response")
    for name, value in (("prompt", prompt), ("response", response)):
        if value is None or (isinstance(value, str) and not value.strip()):
            return f"missing or empty {name}"
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):  # CSV and parquet give numbers
            return f"{name} must be text, got {type(value).__name__}"
        if isinstance(value, str) and first_stray_byte(value) is not None:
            return f"{name} is not valid UTF-8 text"
    return [{"role": "user", "content": str(prompt)}, {"role": "assistant", "content": str(response)}]


ROLES = ("system", "user", "assistant")



def encode_conversation(tokenizer, messages: list[dict], chat: bool = True) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids): everything before the last assistant message, then that message closed by
    end-of-turn (chat) and end-of-text."""
    if chat:
        prompt_text = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
        response_text = messages[-1]["content"] + "<|eot_id|>"
    else:
        prompt_text = "".join(m["content"] for m in messages[:-1])
        response_text = messages[-1]["content"]
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False).input_ids
    response_ids = tokenizer(response_text, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    return prompt_ids, response_ids


def check_characters(tokenizer, conversations: list[list[dict]], tokens: int) -> None:
    """DataError for the first row whose text could not fit in ``tokens`` tokens however it is tokenized: no
    token spells more characters than the longest in the vocabulary, so a row with more than ``tokens`` times
    that many characters is too long (checked without tokenizing a 50 MB row into memory)."""
    widest = widest_token(tokenizer)
    for i, messages in enumerate(conversations, 1):
        characters = sum(len(m["content"]) for m in messages)
        if characters > tokens * widest:
            raise DataError(f"row {i} has {characters:,} characters: more than {tokens} tokens can hold (the "
                            f"longest token has {widest} characters); shorten it or raise seq_len")


@dataclass
class SFTBatches:
    """Prompt/response pairs right-padded with end-of-text to a common length (LLaDA's SFT recipe)."""

    input_ids: torch.LongTensor  # (rows, seq_len)
    prompt_lengths: torch.LongTensor  # (rows,)
    batch_size: int

    @classmethod
    def from_conversations(cls, tokenizer, conversations, batch_size: int, seq_len: int | None = None,
                           chat: bool = True, context_length: int | None = None) -> "SFTBatches":
        limit = context_length or seq_len
        if limit is not None:  # a row too long for sure is refused by its characters, before it is tokenized
            check_characters(tokenizer, conversations, limit)
        pairs = [encode_conversation(tokenizer, m, chat) for m in conversations]
        longest = max(len(p) + len(r) for p, r in pairs)
        seq_len = seq_len or longest
        if context_length is not None and seq_len > context_length:
            raise DataError(f"SFT sequences need {seq_len} tokens, above the model's context of {context_length}")
        if longest > seq_len:
            raise DataError(f"the longest prompt+response has {longest} tokens, above seq_len={seq_len}")
        ids = torch.full((len(pairs), seq_len), tokenizer.eos_token_id, dtype=torch.long)
        for i, (p, r) in enumerate(pairs):
            ids[i, :len(p) + len(r)] = torch.tensor(p + r)
        return cls(ids, torch.tensor([len(p) for p, _ in pairs]), batch_size)

    def next_batch(self, generator: torch.Generator) -> dict:
        rows = torch.randint(0, len(self.input_ids), (self.batch_size,), generator=generator)
        return {"input_ids": self.input_ids[rows], "prompt_lengths": self.prompt_lengths[rows]}

    def fixed_batches(self, count: int, seed: int = 1234) -> list[dict]:
        g = torch.Generator().manual_seed(seed)
        return [self.next_batch(g) for _ in range(count)]

    @property
    def num_tokens(self) -> int:
        return self.input_ids.numel()
