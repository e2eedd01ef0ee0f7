"""Writes tests/data/tokenizers/NAME/chat.json for the tokenizers with a chat template
(made by make_cases.py): what Hugging Face transformers' `apply_chat_template` renders and
the ids it gives, after each user turn of a three-turn conversation (with and without a
system message), with the generation prompt.

Requires `pip install transformers tokenizers` (no torch). Run from the repository root:
python3 tests/tokenizers/make_chat_cases.py
"""

import json
import pathlib

import transformers
from transformers import AutoTokenizer

TURNS = [
    ("Hi there!", "Hello! How can I help?"),
    ("What's 12 + 30?", "  42.  "),
    ("Thanks 🙂 — bye\nsee you", None),
]
SYSTEM = "You are a terse assistant."


def states(system):
    messages = [{"role": "system", "content": system}] if system else []
    for user, reply in TURNS:
        messages.append({"role": "user", "content": user})
        yield list(messages)
        if reply is not None:
            messages.append({"role": "assistant", "content": reply})


def ids_of(out):
    # transformers 5 returns a BatchEncoding, older versions a list.
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def main():
    for name in ["llama3", "smollm"]:
        d = pathlib.Path("tests/data/tokenizers") / name
        tok = AutoTokenizer.from_pretrained(str(d))
        config = json.loads((d / "tokenizer_config.json").read_text())
        assert tok.chat_template == config["chat_template"], "transformers read another template"
        cases = []
        for system in [SYSTEM, None]:
            for messages in states(system):
                text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
                ids = ids_of(tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True))
                cases.append({"messages": messages, "text": text, "ids": ids})
        out = {"transformers_version": transformers.__version__, "cases": cases}
        (d / "chat.json").write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
        print(f"{d / 'chat.json'}: {len(cases)} conversation states")


if __name__ == "__main__":
    main()
