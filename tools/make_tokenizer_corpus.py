#!/usr/bin/env python3
"""Builds tests/data/tokenizer_corpus.txt, the text the tokenizer.json parity test encodes.

Sources (see tests/data/tokenizer_corpus.md): lines of this repository's own sources (MIT), and
text written for this corpus (multilingual sentences, digit runs, whitespace patterns, emoji
sequences, special-token strings). Deterministic: the same checkout gives the same file.
"""
import pathlib
import random

root = pathlib.Path(__file__).resolve().parent.parent
rng = random.Random(20261203)
lines = []

# 1. Code and prose from this repository (C++, CMake, shell, Markdown, JSON).
files = sorted(root.glob("src/**/*.cpp"))[:40] + sorted(root.glob("app/*.cpp"))[:10] + \
    sorted(root.glob("scripts/*.sh")) + [root / "CMakeLists.txt"] + sorted(root.glob("docs/*.md"))
code = []
for f in files:
    for line in f.read_text(encoding="utf-8").splitlines():
        if line.strip():
            code.append(line)
rng.shuffle(code)
lines += code[:900]

# 2. Hand-written sentences in several languages and scripts.
prose = [
    "The quick brown fox jumps over the lazy dog.",
    "It's a truth universally acknowledged that we'll need more tests, isn't it?",
    "She said: \"Don't panic!\" -- and then she left (quietly).",
    "Mr. O'Neil's 3rd-floor office is at 221B Baker St., London NW1 6XE.",
    "E-mail me at jane.doe+tokens@example.com or visit https://example.org/a/b?c=d&e=f#g.",
    "HELLO WORLD, hello world, Hello World, hElLo WoRlD.",
    "naïve café résumé coöperate Zoë Ångström façade jalapeño",
    "Ünïcödé àccents: à á â ã ä å ç è é ê ë ì í î ï ñ ò ó ô õ ö ù ú û ü ý ÿ",
    "Combining: e\u0301 a\u0300 o\u0308 n\u0303 c\u0327 (decomposed accents)",
    "Ligatures and width: ﬁ ﬂ ﬀ Ｈｅｌｌｏ ＡＢＣ １２３ ㈱ ① ② ③ ™ ℃ ½",
    "Deutsch: Größe, Straße, Übermäßig, Fußgängerübergänge.",
    "Français : « Où est la bibliothèque ? » — Elle est là-bas !",
    "Español: ¿Dónde está el baño? ¡Está allí!",
    "Português: Não sei se é verdade, mas ação e coração têm til.",
    "Polski: Zażółć gęślą jaźń.",
    "Čeština: Příliš žluťoučký kůň úpěl ďábelské ódy.",
    "Türkçe: Işık ılık, süt sıcak; İstanbul'da ığdır.",
    "Ελληνικά: Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.",
    "Русский: Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Українська: Чуєш їх, доцю, га? Кумедна ж ти, прощайся без ґольфів!",
    "中文：我能吞下玻璃而不伤身体。今天天气很好，我们去公园散步吧。",
    "繁體中文：這是一個測試句子，用來檢查分詞器。",
    "日本語：私はガラスを食べられます。それは私を傷つけません。カタカナとひらがな。",
    "한국어: 나는 유리를 먹을 수 있어요. 그래도 아프지 않아요.",
    "العربية: أنا قادر على أكل الزجاج و هذا لا يؤلمني.",
    "مرحبا بالعالم! كيف حالك اليوم؟ ١٢٣٤٥٦٧٨٩٠",
    "עברית: אני יכול לאכול זכוכית וזה לא מזיק לי.",
    "हिन्दी: मैं काँच खा सकता हूँ और मुझे उससे कोई चोट नहीं पहुंचती।",
    "नमस्ते दुनिया! यह एक परीक्षण वाक्य है। १२३४५",
    "বাংলা: আমি কাঁচ খেতে পারি, তাতে আমার কোনো ক্ষতি হয় না।",
    "தமிழ்: நான் கண்ணாடி சாப்பிடுவேன், அதனால் எனக்கு ஒரு கேடும் வராது.",
    "ไทย: ฉันกินกระจกได้ แต่มันไม่ทำให้ฉันเจ็บ",
    "Tiếng Việt: Tôi có thể ăn thủy tinh mà không hại gì.",
    "ភាសាខ្មែរ: ខ្ញុំអាចញុំកញ្ចក់បាន ដោយគ្មានបញ្ហា",
    "ქართული: მინას ვჭამ და არა მტკივა.",
    "Հայերեն: Կրնամ ապակի ուտել և ինծի անհանգիստ չըներ։",
    "Emoji: 😀 😃 😄 😁 😆 🥹 🤣 ❤️ 👍 🎉 🚀 🔥 ✨",
    "ZWJ families: 👨‍👩‍👧‍👦 👩‍👩‍👦 👨‍👨‍👧‍👧 🧑‍🤝‍🧑",
    "Skin tones: 👋🏻 👋🏼 👋🏽 👋🏾 👋🏿 🤷🏽‍♀️ 🧑🏿‍💻 👩🏼‍🔬",
    "Flags: 🇺🇸 🇯🇵 🇩🇪 🇧🇷 🏴‍☠️ 🏳️‍🌈 🏴󠁧󠁢󠁳󠁣󠁴󠁿",
    "Keycaps: 1️⃣ 2️⃣ #️⃣ *️⃣ and variation selectors ☺︎ ☺️",
    "Math: ∀x∈ℝ: x² ≥ 0; ∑ᵢ aᵢ = ∫₀¹ f(x) dx ≈ 3.14159…",
    "Arrows & symbols: ← ↑ → ↓ ⇒ ⇔ ∞ § ¶ † ‡ • ° ± × ÷ ≠ ≤ ≥",
    "Currency: $100, €85.50, £70, ¥10,000, ₹5,000, ₿0.0025",
    "Box drawing: ┌─┬─┐ │ │ │ └─┴─┘ ░▒▓█",
    "Zero width: a\u200bb c\u200cd e\u200df \ufeffBOM \u00a0nbsp\u2009thin\u3000ideographic",
    "Mixed scripts: Hello世界مرحباПривет🌍नमस्ते",
    "Tokenizers split words like unbelievably, antidisestablishmentarianism and pneumonoultramicroscopicsilicovolcanoconiosis.",
    "Contractions: I'm, you're, he's, we've, they'd, I'll, can't, won't, shouldn't've, Y'ALL'RE",
    "Quotes: 'single' \"double\" `backtick` ‘curly’ “curly” „low“ ‹angle› «guillemets»",
    "Punctuation runs: ... !!! ??? ?!?! --- ___ *** ### @@@ ((( ))) [[[ ]]] {{{ }}}",
    "Greek capital sigma: ΟΔΟΣ ΣΟΦΙΑ ΣΣ",
]
lines += prose

# 3. Digits and numbers.
for n in range(120):
    k = rng.randint(1, 40)
    digits = "".join(rng.choice("0123456789") for _ in range(k))
    fmt = rng.choice(["{}", "x{}y", "{} apples", "v{}.{}", "{},{}", "-{}", "{}e-{}", "#{}", "{}%"])
    lines.append(fmt.format(digits, rng.randint(0, 999)) if fmt.count("{}") == 2 else fmt.format(digits))
lines += ["1234567890", "3.141592653589793", "2026-12-03T09:25:00Z", "0x7fffffff 0b1011 0o777",
          "1,000,000.00", "١٢٣ ٤٥٦", "१२३ ४५६", "一二三 四五六", "Ⅰ Ⅱ Ⅲ Ⅳ Ⅻ", "¹²³ ₁₂₃"]

# 4. Whitespace patterns (single lines; the harness also joins lines with newlines).
ws = [" ", "  ", "   ", "\t", "\t\t", " \t ", "    leading spaces", "trailing spaces    ",
      "inner     spaces", "tab\tseparated\tvalues", "\t\tindented with tabs", "mixed \t \t whitespace",
      "        eight spaces", " a", "a ", "  a  b  ", "\u3000full width space", "nbsp\u00a0\u00a0two"]
lines += ws * 3

# 5. Special-token strings, alone and in context.
specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>",
            "<|end_header_id|>", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>",
            "<unk>", "<pad>", "[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]", "<start_of_turn>",
            "<end_of_turn>", "<bos>", "<eos>", "<mask>", "<think>", "</think>", "<|fim_prefix|>",
            "<|vision_start|>", "<tool_call>", "<0x41>", "▁", "##ing"]
lines += specials
for i in range(160):
    a, b = rng.sample(specials, 2)
    w = rng.choice(prose)[:rng.randint(5, 40)]
    lines.append(rng.choice([f"{a}{w}{b}", f"{a} {w} {b}", f"{w}{a}", f" {a}\t{w}", f"{a}{b}"]))
lines.append("<|start_header_id|>user<|end_header_id|>\\n\\nHi there!<|eot_id|>")
lines.append("<start_of_turn>user\\nWhat is 2+2?<end_of_turn>\\n<start_of_turn>model")
lines.append("<|im_start|>system You are helpful.<|im_end|><|im_start|>user hi<|im_end|>")
lines.append("[CLS] the man went to the [MASK] . [SEP] he bought a gallon of milk . [SEP]")

# 6. Random mixtures of all of the above.
pool = [l for l in lines if l.strip()]
while len(lines) < 2100:
    parts = rng.sample(pool, rng.randint(2, 3))
    lines.append(rng.choice([" ", "  ", "\t", "", " | "]).join(p[:rng.randint(8, 60)] for p in parts))

out = root / "tests" / "data" / "tokenizer_corpus.txt"
out.write_text("\n".join(l.replace("\n", " ").replace("\r", " ") for l in lines) + "\n",
               encoding="utf-8")
print(f"{out}: {len(lines)} lines")
