// Reference tokenizations for kandil's tokenizer.json parity test, from @huggingface/transformers.
//   node reference.mjs CORPUS.txt OUT_DIR NAME=FOLDER...
// For each tokenizer folder (tokenizer.json + tokenizer_config.json) writes OUT_DIR/NAME.jsonl:
// one JSON object per case {text, ids (add_special_tokens: true), ids_plain (false), decoded
// (decode(ids_plain, skip_special_tokens: true)), decoded_special (decode(ids))}. Cases: every
// corpus line, and every block of 8 consecutive lines joined with "\n" (newline runs, indentation).
import fs from "node:fs";
import path from "node:path";
import { AutoTokenizer, env } from "@huggingface/transformers";

const [corpusFile, outDir, ...specs] = process.argv.slice(2);
const lines = fs.readFileSync(corpusFile, "utf8").split("\n");
if (lines.at(-1) === "") lines.pop();
const cases = [...lines];
for (let i = 0; i + 8 <= lines.length; i += 8) cases.push(lines.slice(i, i + 8).join("\n"));

env.allowRemoteModels = false;
fs.mkdirSync(outDir, { recursive: true });
for (const spec of specs) {
  const eq = spec.indexOf("=");
  const name = spec.slice(0, eq), folder = path.resolve(spec.slice(eq + 1));
  env.localModelPath = path.dirname(folder) + "/";
  const tok = await AutoTokenizer.from_pretrained(path.basename(folder));
  const out = [];
  for (const text of cases) {
    const ids = tok.encode(text);
    const ids_plain = tok.encode(text, { add_special_tokens: false });
    const decoded = ids_plain.length ? tok.decode(ids_plain, { skip_special_tokens: true }) : "";
    const decoded_special = ids.length ? tok.decode(ids) : "";
    out.push(JSON.stringify({ text, ids, ids_plain, decoded, decoded_special }));
  }
  fs.writeFileSync(path.join(outDir, `${name}.jsonl`), out.join("\n") + "\n");
  console.log(`${name}: ${cases.length} cases (${tok.constructor.name})`);
}
