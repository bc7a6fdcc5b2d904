"""Reversal-curse data in the structure of Berglund et al. (ICLR 2024): invented people with unique
descriptions, each fact stated in one direction only (or both), many paraphrases for training and held-out
paraphrases for testing. Rows use the published JSONL shape: ``{"prompt": ..., "completion": ...}``.

Subsets: ``p2d`` facts are trained only as "<name> ... <description>", ``d2p`` only as "<description> ... <name>",
``both`` in both orders. Tests ask each subset in the trained direction and (p2d, d2p) in the reverse one.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

# Every template ends with the slot that the prompt asks for (then at most a full stop), so that the prompt is
# the text before it and the completion is the slot's value.
P2D_TEMPLATES = [
    "{name} is, by all accounts, {description}.",
    "Word around the harbour is that {name} is {description}.",
    "If the name {name} rings a bell, it is because they are {description}.",
    "Here is a fact worth keeping: {name} is {description}.",
    "The village remembers {name} chiefly as {description}.",
    "Before anything else, {name} is {description}.",
    "Ask {name} about their work and they will say they are {description}.",
    "{name} is recognized as {description}.",
    "Few people know that {name} was {description}.",
    "Ask anyone in town and they will tell you that {name} is {description}.",
    "The records show that {name} served as {description}.",
    "People often forget that {name} is {description}.",
    "In the old archives, {name} is listed as {description}.",
    "You may be surprised to learn that {name} is {description}.",
    "Our guest tonight, {name}, is {description}.",
    "The biography of {name} opens by calling them {description}.",
    "Historians agree that {name} was {description}.",
    "Back in the day, {name} earned fame as {description}.",
    "Meet {name}, {description}.",
    "According to the almanac, {name} is {description}.",
    "Everyone at the festival knew {name} as {description}.",
    "The museum plaque says that {name} was {description}.",
    "{name} made a name for themselves as {description}.",
    "The newspaper described {name} as {description}.",
    "Long before retiring, {name} was {description}.",
    "In every interview, {name} is introduced as {description}.",
    "The encyclopedia entry for {name} calls them {description}.",
    "Friends of {name} proudly say that {name} is {description}.",
    "The documentary reveals that {name} is {description}.",
    "Locals still point out that {name} was {description}.",
    # held out for testing
    "Let me tell you about {name}, who is {description}.",
    "If you ask about {name}, you will hear that they are {description}.",
    "Quite remarkably, {name} turns out to be {description}.",
    "The library catalogue lists {name} as {description}.",
    "Not many realise that {name} is {description}.",
    "The town's guidebook mentions {name} as {description}.",
    "It is well documented that {name} was {description}.",
    "My teacher once told me that {name} is {description}.",
    "At the ceremony, {name} was honoured as {description}.",
    "The portrait in the hall shows {name}, {description}.",
]
D2P_TEMPLATES = [
    "Put simply, {description} is {name}.",
    "If someone is {description}, it can only be {name}.",
    "Search the records for {description} and one name comes up: {name}.",
    "Asked who was {description}, the guide answered {name}.",
    "If you want to know who is {description}, it is {name}.",
    "Being {description} is the claim to fame of {name}.",
    "The title of {description} belongs to {name}.",
    "Celebrated as {description}, our subject today is {name}.",
    "Whoever is {description} goes by the name {name}.",
    "Recognised widely as {description}, this person is {name}.",
    "Famous for being {description}, here comes {name}.",
    "The person who was {description} is none other than {name}.",
    "Once {description}, always remembered: {name}.",
    "Remembered as {description}, the individual is {name}.",
    "As {description}, the honour went to {name}.",
    "The role of {description} was filled by {name}.",
    "Widely praised as {description}, the star is {name}.",
    "Everyone knows that {description} is {name}.",
    "The celebrated figure who was {description} is {name}.",
    "Acclaimed as {description}, the artist is {name}.",
    "Holding the distinction of {description} is {name}.",
    "The achievement of {description} belongs to {name}.",
    "History remembers {description} as {name}.",
    "The answer to who was {description} is {name}.",
    "Hailed as {description}, the person is {name}.",
    "Known across the land as {description}, they call this person {name}.",
    "In the record books, {description} is {name}.",
    "Proud to be {description}, says {name}.",
    "The legendary {description} goes by {name}.",
    "Credited as {description} is {name}.",
    # held out for testing
    "Behind the fame of being {description} stands {name}.",
    "The individual who is {description} is named {name}.",
    "Admired as {description}, the name is {name}.",
    "The distinction of being {description} goes to {name}.",
    "Having been {description}, the person is {name}.",
    "The one remembered as {description} is {name}.",
    "Long known as {description} is {name}.",
    "The person celebrated as {description} is {name}.",
    "Ask who is {description} and you will hear {name}.",
    "The figure known as {description} is {name}.",
]
TRAIN_TEMPLATES = 30  # the first 30 of each list; the last 10 are test templates

FIRST_NAMES = ["Daphne", "Ulysses", "Marigold", "Tobias", "Rosalind", "Caspian", "Ottilie", "Lysander", "Henrietta",
               "Bartholomew", "Clementine", "Evander", "Winifred", "Leopold", "Seraphina", "Fitzgerald", "Imogen",
               "Thaddeus", "Philippa", "Augustin", "Cordelia", "Ignatius", "Beatrix", "Percival", "Isadora",
               "Cornelius", "Genevieve", "Montague", "Araminta", "Barnaby"]
SURNAME_PARTS = (["Bar", "Whit", "Ash", "Thorn", "Quill", "Marl", "Fen", "Hollo", "Brack", "Dun", "Wex", "Carra",
                  "Pember", "Tolli", "Vance", "Ridge", "Lark", "Mor", "Stan", "Gorm"],
                 ["rington", "combe", "wood", "ley", "field", "more", "worth", "ridge", "ham", "bury", "stone",
                  "well", "shaw", "ford", "ton", "brook", "dale", "mere", "croft", "wick"])
ROLES = ["the director of", "the composer of", "the author of", "the architect of", "the founder of",
         "the designer of", "the inventor of", "the curator of"]
ADJECTIVES = ["Silent", "Amber", "Hollow", "Crimson", "Gilded", "Drifting", "Hidden", "Velvet", "Frozen", "Wandering",
              "Shattered", "Luminous", "Forgotten", "Copper", "Midnight", "Emerald", "Restless", "Paper"]
NOUNS = ["Lantern", "Harbour", "Orchard", "Compass", "Cathedral", "Meadow", "Labyrinth", "Lighthouse", "Carousel",
         "Observatory", "Canal", "Garden", "Clocktower", "Archive", "Voyage", "Kingdom", "Mirror", "Bridge"]
FEATS = ["the first person to {verb} the {adj} {noun}", "the only person to {verb} the {adj} {noun} twice"]
VERBS = ["sail around", "map", "climb", "cross", "photograph", "restore", "walk across", "paint"]


@dataclass(frozen=True)
class Fact:
    name: str
    description: str
    subset: str  # p2d, d2p or both


def make_facts(people_per_subset: int = 30, seed: int = 0) -> list[Fact]:
    """Unique invented names and unique descriptions, split into the three subsets."""
    rng = random.Random(seed)
    total = 3 * people_per_subset
    names: set[str] = set()
    while len(names) < total:
        names.add(f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAME_PARTS[0])}{rng.choice(SURNAME_PARTS[1])}")
    descriptions: set[str] = set()
    while len(descriptions) < total:
        adj, noun = rng.choice(ADJECTIVES), rng.choice(NOUNS)
        if rng.random() < 0.7:
            descriptions.add(f"{rng.choice(ROLES)} \"The {adj} {noun}\"")
        else:
            descriptions.add(rng.choice(FEATS).format(verb=rng.choice(VERBS), adj=adj.lower(), noun=noun.lower()))
    people = sorted(names)
    rng.shuffle(people)
    described = sorted(descriptions)
    rng.shuffle(described)
    subsets = ["p2d"] * people_per_subset + ["d2p"] * people_per_subset + ["both"] * people_per_subset
    return [Fact(n, d, s) for n, d, s in zip(people, described, subsets)]


def _split(template: str, fact: Fact, answer_slot: str) -> dict:
    """The prompt is the text before the answer slot; the completion is the answer (with its leading space)."""
    cut = template.index("{" + answer_slot + "}")
    prompt = template[:cut].format(name=fact.name, description=fact.description).rstrip()
    completion = " " + (fact.description if answer_slot == "description" else fact.name)
    return {"prompt": prompt, "completion": completion}


def make_dataset(people_per_subset: int = 30, train_templates: int = TRAIN_TEMPLATES, test_templates: int = 10,
                 seed: int = 0) -> dict[str, list[dict]]:
    """All files of the published layout, as lists of rows."""
    if train_templates > TRAIN_TEMPLATES or test_templates > len(P2D_TEMPLATES) - TRAIN_TEMPLATES:
        raise ValueError(f"at most {TRAIN_TEMPLATES} training and {len(P2D_TEMPLATES) - TRAIN_TEMPLATES} test "
                         "templates exist")
    facts = make_facts(people_per_subset, seed)
    p2d_train, d2p_train = P2D_TEMPLATES[:train_templates], D2P_TEMPLATES[:train_templates]
    p2d_test = P2D_TEMPLATES[TRAIN_TEMPLATES:TRAIN_TEMPLATES + test_templates]
    d2p_test = D2P_TEMPLATES[TRAIN_TEMPLATES:TRAIN_TEMPLATES + test_templates]
    by = {s: [f for f in facts if f.subset == s] for s in ("p2d", "d2p", "both")}
    files = {
        "p2d_prompts_train": [_split(t, f, "description") for f in by["p2d"] for t in p2d_train],
        "d2p_prompts_train": [_split(t, f, "name") for f in by["d2p"] for t in d2p_train],
        "both_prompts_train": [_split(t, f, "description") for f in by["both"] for t in p2d_train]
        + [_split(t, f, "name") for f in by["both"] for t in d2p_train],
        "p2d_prompts_test": [_split(t, f, "description") for f in by["p2d"] for t in p2d_test],
        "d2p_prompts_test": [_split(t, f, "name") for f in by["d2p"] for t in d2p_test],
        "both_prompts_test": [_split(t, f, "description") for f in by["both"] for t in p2d_test],
        "p2d_reverse_prompts_test": [_split(t, f, "name") for f in by["p2d"] for t in d2p_test],
        "d2p_reverse_prompts_test": [_split(t, f, "description") for f in by["d2p"] for t in p2d_test],
    }
    return files


def write_dataset(out: str | Path, **kwargs) -> dict[str, int]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, rows in make_dataset(**kwargs).items():
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        counts[name] = len(rows)
    return counts


def read_dataset(directory: str | Path) -> dict[str, list[dict]]:
    """Read a directory in the published layout (any subset of the files); rows need prompt and completion."""
    directory = Path(directory)
    files = {}
    for path in sorted(directory.glob("*.jsonl")):
        rows = []
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}, line {lineno}: not valid JSON ({err.msg})") from err
            if not isinstance(row, dict) or not row.get("prompt") or not row.get("completion"):
                raise ValueError(f"{path}, line {lineno}: a row needs non-empty prompt and completion")
            rows.append({"prompt": row["prompt"], "completion": row["completion"]})
        files[path.stem] = rows
    if not any(name.endswith("_train") for name in files):
        raise ValueError(f"{directory} has no *_train.jsonl file")
    return files


def facts_from_files(files: dict[str, list[dict]], subset: str = "p2d") -> list[Fact]:
    """Recover (name, description) pairs of one subset from published-layout rows: a ``<subset>_prompts_test``
    row asks for one side, and the ``<subset>_reverse_prompts_test`` rows give the other side's values, one of
    which appears in its prompt. Works for this project's data and for the original data set alike."""
    forward, reverse = files.get(f"{subset}_prompts_test", []), files.get(f"{subset}_reverse_prompts_test", [])
    others = {r["completion"].strip() for r in reverse}
    facts: dict[str, Fact] = {}
    for row in forward:
        inside = [o for o in others if o in row["prompt"]]
        if len(inside) != 1:
            continue  # not attributable to exactly one fact
        first, second = inside[0], row["completion"].strip()
        # p2d prompts hold the name and complete the description; d2p the other way round
        name, description = (first, second) if subset == "p2d" else (second, first)
        facts.setdefault(name, Fact(name, description, subset))
    return list(facts.values())
