import json

import pytest

from llada_play.experiments.reversal_data import (D2P_TEMPLATES, P2D_TEMPLATES, TRAIN_TEMPLATES, make_dataset, make_facts,
                                      read_dataset, write_dataset)


def test_facts_are_unique_and_split_evenly():
    facts = make_facts(30, seed=0)
    assert len({f.name for f in facts}) == 90 and len({f.description for f in facts}) == 90
    assert [sum(f.subset == s for f in facts) for s in ("p2d", "d2p", "both")] == [30, 30, 30]
    assert make_facts(30, seed=0) == facts and make_facts(30, seed=1) != facts


def test_the_published_shape():
    data = make_dataset()
    assert len(data["p2d_prompts_train"]) == 30 * 30 and len(data["both_prompts_train"]) == 2 * 30 * 30
    assert len(data["p2d_prompts_test"]) == len(data["p2d_reverse_prompts_test"]) == 30 * 10


def test_no_fact_leaks_in_the_wrong_direction():
    facts = make_facts()
    data = make_dataset()
    train_text = [r["prompt"] + r["completion"] for k in ("p2d_prompts_train", "d2p_prompts_train",
                                                           "both_prompts_train") for r in data[k]]
    for fact in facts:
        mentions = [t for t in train_text if fact.name in t and fact.description in t]
        assert mentions, fact
        name_first = [t.index(fact.name) < t.index(fact.description) for t in mentions]
        if fact.subset == "p2d":
            assert all(name_first)
        elif fact.subset == "d2p":
            assert not any(name_first)
        else:
            assert any(name_first) and not all(name_first)
    # reverse questions ask for what the training text never put second
    p2d = {f.name for f in facts if f.subset == "p2d"}
    assert all(r["completion"].strip() in p2d for r in data["p2d_reverse_prompts_test"])


def test_held_out_templates_are_unseen_in_training():
    data = make_dataset()
    test_frames = {t.split("{")[0] for t in P2D_TEMPLATES[TRAIN_TEMPLATES:] + D2P_TEMPLATES[TRAIN_TEMPLATES:]}
    train_frames = {t.split("{")[0] for t in P2D_TEMPLATES[:TRAIN_TEMPLATES] + D2P_TEMPLATES[:TRAIN_TEMPLATES]}
    assert not test_frames & train_frames
    train_prompts = {r["prompt"] for k in data if k.endswith("_train") for r in data[k]}
    test_prompts = {r["prompt"] for k in data if k.endswith("_test") for r in data[k]}
    assert not train_prompts & test_prompts
    for template in P2D_TEMPLATES + D2P_TEMPLATES:  # the asked-for slot comes last
        assert template.rstrip(".?").endswith(("{description}", "{name}"))


def test_round_trip_and_bad_rows(tmp_path):
    counts = write_dataset(tmp_path / "d", people_per_subset=3, train_templates=4, test_templates=2)
    data = read_dataset(tmp_path / "d")
    assert {k: len(v) for k, v in data.items()} == counts
    (tmp_path / "d" / "extra_train.jsonl").write_text(json.dumps({"prompt": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"extra_train\.jsonl, line 1: a row needs non-empty prompt and completion"):
        read_dataset(tmp_path / "d")
    with pytest.raises(ValueError, match="at most 30 training"):
        make_dataset(train_templates=31)
