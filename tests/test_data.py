import json

import pytest
import torch

from llada_play.training.data import (DataError, PackedBatches, SFTBatches, encode_conversation, load_sft_rows, pack_tokens,
                             read_corpus, split_documents)


def write(path, text):
    path.write_text(text)
    return path


def test_jsonl_rows_and_chat_messages(tmp_path):
    f = write(tmp_path / "d.jsonl", json.dumps({"prompt": "2+2?", "response": "4"}) + "\n\n" + json.dumps(
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello"}]}) + "\n")
    rows = load_sft_rows(f)
    assert rows[0] == [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    assert rows[1][0]["role"] == "system" and rows[1][-1]["content"] == "Hello"


def test_csv_and_json_array(tmp_path):
    f = write(tmp_path / "d.csv", "prompt,response\nWho?,Me\n")
    assert load_sft_rows(f) == [[{"role": "user", "content": "Who?"}, {"role": "assistant", "content": "Me"}]]
    g = write(tmp_path / "d.json", json.dumps([{"prompt": "a", "response": "b"}]))
    assert len(load_sft_rows(g)) == 1


def test_parquet_through_datasets(tmp_path):
    import datasets
    path = tmp_path / "d.parquet"
    datasets.Dataset.from_list([{"prompt": "p", "response": "r"}] * 3).to_parquet(str(path))
    assert len(load_sft_rows(path)) == 3


@pytest.mark.parametrize("line,why", [
    ("{not json", "not valid JSON"),
    (json.dumps({"prompt": "q"}), "missing or empty response"),
    (json.dumps({"response": "a"}), "missing or empty prompt"),
    (json.dumps({"messages": [{"role": "user", "content": "x"}]}), "the last message must be a non-empty assistant"),
    (json.dumps(["a", "b"]), "a row must be an object"),
])
def test_malformed_rows_name_file_and_line(tmp_path, line, why):
    good = json.dumps({"prompt": "q", "response": "a"})
    f = write(tmp_path / "d.jsonl", f"{good}\n{line}\n{good}\n")
    with pytest.raises(DataError, match=rf"d\.jsonl, line 2: {why}"):
        load_sft_rows(f, on_error="stop")
    with pytest.warns(UserWarning, match=rf"skipping .*d\.jsonl, line 2: {why}"):
        rows = load_sft_rows(f, on_error="skip")
    assert len(rows) == 2


def test_empty_and_missing_data(tmp_path):
    with pytest.raises(DataError, match="holds no usable"):
        load_sft_rows(write(tmp_path / "e.jsonl", "\n"))
    with pytest.raises(DataError, match="does not exist"):
        load_sft_rows(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="unsupported SFT file type"):
        load_sft_rows(write(tmp_path / "x.xml", "<a/>"))
    with pytest.raises(DataError, match="no text found"):
        (tmp_path / "c").mkdir()
        read_corpus(tmp_path / "c")


def test_sft_batches_pad_with_eos_and_respect_the_context(char_tokenizer):
    convs = [[{"role": "user", "content": "ab"}, {"role": "assistant", "content": "cd"}],
             [{"role": "user", "content": "abcdef"}, {"role": "assistant", "content": "g"}]]
    batches = SFTBatches.from_conversations(char_tokenizer, convs, batch_size=2)
    p, r = encode_conversation(char_tokenizer, convs[0])
    assert r[-1] == char_tokenizer.eos_token_id and char_tokenizer.decode(r[:-1]) == "cd<|eot_id|>"
    row = batches.input_ids[0].tolist()
    assert row[:len(p) + len(r)] == p + r and set(row[len(p) + len(r):]) <= {char_tokenizer.eos_token_id}
    assert batches.prompt_lengths[0] == len(p)
    with pytest.raises(DataError, match="above the model's context of 8"):
        SFTBatches.from_conversations(char_tokenizer, convs, batch_size=2, context_length=8)
    with pytest.raises(DataError, match="above seq_len=5"):
        SFTBatches.from_conversations(char_tokenizer, convs, batch_size=2, seq_len=5)


def test_packing_and_document_split(char_tokenizer):
    texts = {f"doc{i}": "abc " * 50 for i in range(20)}
    train, val = split_documents(texts, 0.1, seed=0)
    assert len(val) == 2 and not set(train) & set(val)
    assert split_documents(texts, 0.1, seed=0) == (train, val)
    tokens = pack_tokens(char_tokenizer, ["ab", "cd"] * 40, seq_len=16)
    assert (tokens == char_tokenizer.eos_token_id).sum() == 80
    batches = PackedBatches(tokens, 16, 3)
    a = batches.next_batch(torch.Generator().manual_seed(1))["input_ids"]
    b = batches.next_batch(torch.Generator().manual_seed(1))["input_ids"]
    assert a.shape == (3, 16) and torch.equal(a, b)
    with pytest.raises(DataError, match="fewer than one sequence"):
        pack_tokens(char_tokenizer, ["ab"], seq_len=16)
