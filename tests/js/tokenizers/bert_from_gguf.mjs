// Writes a Hugging Face tokenizer.json for the WordPiece vocab of a GGUF "bert" vocab file
// (llama.cpp stores word-start tokens as "▁word" and continuations without "##"; this undoes
// that), with bert-base-uncased's pipeline: BertNormalizer, BertPreTokenizer, WordPiece,
// [CLS] $A [SEP], WordPiece decoder.
//   node bert_from_gguf.mjs VOCAB.gguf OUT_DIR
import fs from "node:fs";
import path from "node:path";

function readGgufStrings(file, wanted) {
  const b = fs.readFileSync(file);
  let o = 0;
  const u32 = () => { const v = b.readUInt32LE(o); o += 4; return v; };
  const u64 = () => { const v = Number(b.readBigUInt64LE(o)); o += 8; return v; };
  const str = () => { const n = u64(); const s = b.toString("utf8", o, o + n); o += n; return s; };
  const sizes = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
  const value = (t) => {
    if (t === 8) return str();
    if (t === 9) {
      const et = u32(), n = u64(), out = [];
      for (let i = 0; i < n; ++i) out.push(value(et));
      return out;
    }
    const n = sizes[t];
    if (n === undefined) throw new Error(`${file}: bad GGUF type ${t}`);
    const v = n === 4 && t === 4 ? b.readUInt32LE(o) : n === 4 && t === 5 ? b.readInt32LE(o) : null;
    o += n;
    return v;
  };
  if (b.toString("latin1", 0, 4) !== "GGUF") throw new Error(`${file}: not GGUF`);
  o = 4; u32(); u64();
  const nkv = u64(), out = {};
  for (let i = 0; i < nkv; ++i) {
    const k = str(), t = u32(), v = value(t);
    if (wanted.includes(k)) out[k] = v;
  }
  return out;
}

const [vocabFile, outDir] = process.argv.slice(2);
const kv = readGgufStrings(vocabFile, ["tokenizer.ggml.tokens", "tokenizer.ggml.token_type"]);
const tokens = kv["tokenizer.ggml.tokens"];
const types = kv["tokenizer.ggml.token_type"];
const vocab = {};
const added = [];
tokens.forEach((t, id) => {
  let text;
  if ((types && types[id] === 3) || /^\[unused\d+\]$/.test(t)) text = t;  // [PAD] [CLS] [unused0]
  else if (t.startsWith("\u2581")) text = t.slice(1);
  else text = "##" + t;
  if (text === "##" || text in vocab) text = t;  // keep ids unique
  vocab[text] = id;
  if (types && types[id] === 3) {
    added.push({ id, content: text, single_word: false, lstrip: false, rstrip: false,
                 normalized: false, special: true });
  }
});
const tj = {
  version: "1.0", truncation: null, padding: null, added_tokens: added,
  normalizer: { type: "BertNormalizer", clean_text: true, handle_chinese_chars: true,
                strip_accents: null, lowercase: true },
  pre_tokenizer: { type: "BertPreTokenizer" },
  post_processor: {
    type: "TemplateProcessing",
    single: [{ SpecialToken: { id: "[CLS]", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } },
             { SpecialToken: { id: "[SEP]", type_id: 0 } }],
    pair: [{ SpecialToken: { id: "[CLS]", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } },
           { SpecialToken: { id: "[SEP]", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } },
           { SpecialToken: { id: "[SEP]", type_id: 1 } }],
    special_tokens: {
      "[CLS]": { id: "[CLS]", ids: [vocab["[CLS]"]], tokens: ["[CLS]"] },
      "[SEP]": { id: "[SEP]", ids: [vocab["[SEP]"]], tokens: ["[SEP]"] },
    },
  },
  decoder: { type: "WordPiece", prefix: "##", cleanup: true },
  model: { type: "WordPiece", unk_token: "[UNK]", continuing_subword_prefix: "##",
           max_input_chars_per_word: 100, vocab },
};
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, "tokenizer.json"), JSON.stringify(tj));
fs.writeFileSync(path.join(outDir, "tokenizer_config.json"), JSON.stringify({
  tokenizer_class: "BertTokenizer", do_lower_case: true, cls_token: "[CLS]", sep_token: "[SEP]",
  unk_token: "[UNK]", pad_token: "[PAD]", mask_token: "[MASK]", clean_up_tokenization_spaces: true,
}));
console.log(`${outDir}: ${Object.keys(vocab).length} tokens`);
