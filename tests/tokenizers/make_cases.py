"""Builds small byte-level BPE tokenizers with Hugging Face `tokenizers` and writes, for each,
a folder under tests/data/tokenizers/NAME with tokenizer.json, tokenizer_config.json,
config.json and cases.json: the ids `tokenizers` gives for >= 200 test strings (mixed
scripts, digits, white space, emoji, special tokens in text) and the text it decodes them to.

No downloads: each tokenizer is trained here on the small text below. Requires
`pip install tokenizers` (the version is recorded in cases.json). Run from the repository
root: python3 tests/tokenizers/make_cases.py
"""

import json
import pathlib
import random
import unicodedata

import tokenizers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

CORPUS = """Once upon a time, there was a little robot named Pip. Pip lived in a small town by the sea.
Every morning Pip said "Hello!" to the fisherman, and the fisherman said: "It's a fine day, isn't it?"
They'd talk about the weather, the boats, and the 3 cats that lived at number 42.
In 1999 the town had 1,234 people; in 2024 it had 5678. Prices: $3.50, €12, ¥1000, 45%.
Le petit robot aimait le café crème et les crêpes. Ça va? Très bien, merci! À bientôt.
Der Roboter läuft über die Straße. Größe: 12 cm. Schöne Grüße aus München.
El niño comió una manzana. ¿Dónde está la biblioteca? ¡Qué día tan bonito!
Маленький робот жил у моря. Привет, как дела? Всё хорошо, спасибо.
Ο μικρός ρομπότ ζούσε κοντά στη θάλασσα. Καλημέρα!
小さなロボットは海のそばに住んでいました。こんにちは、元気ですか？
小机器人住在海边。你好，今天天气很好。我们有3只猫。
작은 로봇은 바다 옆에 살았습니다. 안녕하세요!
الروبوت الصغير يعيش بجانب البحر. مرحبا ١٢٣٤٥
छोटा रोबोट समुद्र के पास रहता था। नमस्ते, आप कैसे हैं? हिन्दी ४२
หุ่นยนต์ตัวเล็กอาศัยอยู่ริมทะเล สวัสดีครับ
Emoji: 🙂 😀 👍🏽 🚀🌊 ❤️ 👨‍👩‍👧 🇺🇸 ✨
def main():\n    print("hello world")\n    return 0\n
for (int i = 0; i < 10; i++) { x += i * 2; }
  Indented   text\twith\ttabs  and   spaces.
Line one.\r\nLine two.\r\n\r\nLine four.
We're sure you'll like it; they've said I'm right, and he'd agree. WE'RE SURE. YOU'LL SEE.
"""

FRAGMENTS = [
    "", " ", "  ", "   ", "\n", "\n\n", "\r\n", "\t", " \n ", "a", "A", "hello", " hello",
    "Hello world", "Hello  world", "hello world ", "hello world  ", "  leading", "trailing  ",
    "it's", "IT'S", "It'S", "we're", "WE'RE", "you'll", "they've", "I'm", "he'd", "don't",
    "'s", " 's", "''", "'", "'ll've", "x'LL", "rock'n'roll",
    "1", "12", "123", "1234", "12345", "123456789", "3.14159", "1,000,000", "0x1F", "v2.0.1",
    "2024-12-03", "10:45", "+49 30 1234567", "٣٤٥", "१२३", "½ ⅓ ¾", "Ⅻ", "²³", "₂",
    "café", "cafe\u0301", "naïve", "Größe", "straße", "Ça", "ﬁne", "Æsir", "ŒUVRE",
    "Привет", "мир", "Καλημέρα", "θάλασσα", "東京", "こんにちは", "ロボット", "你好世界", "안녕하세요",
    "مرحبا", "שלום", "नमस्ते", "हिन्दी", "สวัสดี", "ქართული", "Հայերեն", "አማርኛ",
    "🙂", "😀😀", "👍🏽", "👨‍👩‍👧", "🇺🇸", "❤️", "🚀 launch", "✨new✨",
    "$3.50", "€12", "45%", "a+b=c", "x*y", "(a)", "[1, 2]", "{\"k\": \"v\"}", "<div>", "</s>",
    "C:\\path\\to", "foo_bar", "foo-bar", "foo.bar", "#tag", "@user", "e-mail@example.com",
    "https://example.com/a?b=c", "...", "!!!", "?!", "--", "—", "–", "…", "«quote»", "„Zitat“",
    "\u00a0", "a\u00a0b", "a\u2003b", "a\u3000b", "\u200b", "a\u200bb", "\u2028", "\x0b", "\x0c",
    "\x85", "tab\there", "a\n\nb", "a \n\n b", "a\r\n\r\nb", "  \n  x", "x  \n", "\n  \n",
    "line\n", "\nline", "   end", "def f():\n    return 1\n", "    indented", "\t\tcode",
]

SPECIAL_FRAGMENTS = {
    "llama3": ["<|begin_of_text|>", "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>", "a<|eot_id|>b", "<|eot_id|><|eot_id|>", "<|eot_id", "< |eot_id|>"],
    "smollm": ["<|im_start|>user\nhi<|im_end|>\n", "x<|endoftext|>y", "<|im_start|><|im_end|>", "<|im_", "<|im_start|>assistant"],
    "qwen2": ["<|im_start|>system\nYou are helpful.<|im_end|>\n", "<|endoftext|>", "a<|im_end|>", "<|im_end"],
    "handmade": ["abc", "xabc abc", "abcabc", "aabcc", "bcab", "<|endoftext|>abc"],
}


# Chat templates in the style of Llama 3's and SmolLM2's (ChatML, written over several lines
# so that Jinja's trim_blocks / lstrip_blocks matter), for tests/tokenizers/make_chat_cases.py.
CHAT_TEMPLATES = {
    "llama3": (
        "{% set loop_messages = messages %}{% for message in loop_messages %}"
        "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
        "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
        "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
    ),
    "smollm": (
        "{% for message in messages %}\n"
        "    {% if loop.first and messages[0]['role'] != 'system' %}\n"
        "{{- '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM.<|im_end|>\\n' }}\n"
        "    {% endif %}\n"
        "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'].strip() + '<|im_end|>' + '\\n' }}\n"
        "{% endfor %}\n"
        "{% if add_generation_prompt %}\n"
        "{{- '<|im_start|>assistant\\n' }}\n"
        "{% endif %}\n"
    ),
}


def strings(name, seed):
    rng = random.Random(seed)
    out = list(FRAGMENTS) + SPECIAL_FRAGMENTS[name]
    lines = CORPUS.splitlines(keepends=True)
    out += lines
    pool = FRAGMENTS + SPECIAL_FRAGMENTS[name]
    while len(out) < 300:
        k = rng.randint(2, 6)
        seps = ["", " ", "  ", "\n", " \n", "\t", "\n\n", ""]
        s = ""
        for _ in range(k):
            s += rng.choice(pool) + rng.choice(seps)
        out.append(s)
    out.append(CORPUS)
    seen, uniq = set(), []
    for s in out:
        if s not in seen:
            seen.add(s)
            uniq.append(s)
    return uniq


def handmade():
    """A GPT-2-style tokenizer whose token "abc" is made by the merge ("ab", "c") only, while
    "bc" merges first: "abc" must encode as ["a", "bc"] (no merge ("a", "bc") exists)."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {c: i for i, c in enumerate(sorted(alphabet))}
    merges = [("b", "c"), ("a", "b"), ("ab", "c")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.add_special_tokens(["<|endoftext|>"])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    config = {"eos_token_id": vocab["<|endoftext|>"], "vocab_size": tok.get_vocab_size()}
    return tok, config, {"eos_token": "<|endoftext|>"}


def build(name):
    if name == "handmade":
        return handmade()
    specials = {
        "llama3": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        "smollm": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        "qwen2": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
    }[name]
    tok = Tokenizer(models.BPE(ignore_merges=(name == "llama3")))
    if name == "llama3":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ])
    elif name == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ])
    else:
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=900,
        min_frequency=1,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([CORPUS] * 3, trainer=trainer)
    if name == "llama3":
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single="<|begin_of_text|> $A",
                pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                special_tokens=[("<|begin_of_text|>", bos)],
            ),
        ])
        config = {"bos_token_id": bos, "eos_token_id": tok.token_to_id("<|eot_id|>")}
        tok_config = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        eos = "<|endoftext|>" if name == "qwen2" else "<|im_end|>"
        config = {"eos_token_id": tok.token_to_id(eos)}
        tok_config = {"eos_token": eos, "add_bos_token": False}
    config["vocab_size"] = tok.get_vocab_size()
    if name in CHAT_TEMPLATES:
        tok_config["chat_template"] = CHAT_TEMPLATES[name]
        tok_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    return tok, config, tok_config


def main():
    root = pathlib.Path("tests/data/tokenizers")
    for seed, name in enumerate(["llama3", "smollm", "qwen2", "handmade"]):
        tok, config, tok_config = build(name)
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        tok.save(str(d / "tokenizer.json"))
        (d / "config.json").write_text(json.dumps(config, indent=1) + "\n")
        (d / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=1) + "\n")
        cases = []
        for text in strings(name, seed) if name != "handmade" else SPECIAL_FRAGMENTS[name]:
            if name == "qwen2" and unicodedata.normalize("NFC", text) != text:
                continue  # chispa does not normalize; the NFC normalizer is identity on NFC text
            enc = tok.encode(text)
            ids = enc.ids
            cases.append({"text": text, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)})
        out = {"tokenizers_version": tokenizers.__version__, "cases": cases}
        (d / "cases.json").write_text(json.dumps(out, ensure_ascii=False, indent=0) + "\n")
        print(f"{d}: vocab {tok.get_vocab_size()}, {len(cases)} cases")


if __name__ == "__main__":
    main()
