// Parity test: renders every (template x message set x add_generation_prompt) with
// @huggingface/jinja (the reference) and with `kandil template`, and compares byte for byte.
// Where the reference raises (e.g. a template that requires alternating roles), kandil must fail
// too. Usage:
//   node parity.mjs --kandil BIN --modules DIR/node_modules --templates DIR --messages DIR
//                   [--only SUBSTRING] [--verbose]
// Exit 0 when every case matches, 1 otherwise.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

const args = {};
for (let k = 2; k < process.argv.length; ++k) {
  const a = process.argv[k];
  if (a === "--verbose") args.verbose = true;
  else args[a.replace(/^--/, "")] = process.argv[++k];
}
for (const need of ["kandil", "modules", "templates", "messages"]) {
  if (!args[need]) {
    console.error(`parity.mjs: missing --${need}`);
    process.exit(2);
  }
}

// strftime_now() must be deterministic: both sides use this clock, in UTC.
const NOW_SECONDS = 1721952000; // 2024-07-26T00:00:00Z
process.env.TZ = "UTC";
const RealDate = Date;
globalThis.Date = class extends RealDate {
  constructor(...a) {
    if (a.length === 0) super(NOW_SECONDS * 1000);
    else super(...a);
  }
  static now() {
    return NOW_SECONDS * 1000;
  }
};

const jinjaEntry = path.join(args.modules, "@huggingface", "jinja", "dist", "index.js");
const { Template } = await import(pathToFileURL(jinjaEntry).href);

const tokensFile = path.join(args.templates, "tokens.json");
const tokens = fs.existsSync(tokensFile) ? JSON.parse(fs.readFileSync(tokensFile, "utf8")) : {};
const templates = fs.readdirSync(args.templates).filter((f) => f.endsWith(".jinja")).sort();
const messageSets = fs.readdirSync(args.messages).filter((f) => f.endsWith(".json")).sort();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "kandil-jinja-parity-"));

let pass = 0, fail = 0, bothRaise = 0;
for (const tf of templates) {
  const name = tf.replace(/\.jinja$/, "");
  if (args.only && !name.includes(args.only)) continue;
  const source = fs.readFileSync(path.join(args.templates, tf), "utf8");
  const special = tokens[name] ?? { bos_token: "<s>", eos_token: "</s>" };
  let template = null, parseError = null;
  try {
    template = new Template(source);
  } catch (e) {
    parseError = e;
  }
  for (const mf of messageSets) {
    const input = JSON.parse(fs.readFileSync(path.join(args.messages, mf), "utf8"));
    for (const agp of [false, true]) {
      const vars = { ...special, ...(Array.isArray(input) ? { messages: input } : input), add_generation_prompt: agp };
      const label = `${name} x ${mf.replace(/\.json$/, "")} x agp=${agp}`;
      let expected = null, expectedError = parseError;
      if (template) {
        try {
          expected = template.render(structuredClone(vars));
        } catch (e) {
          expectedError = e;
        }
      }
      const varsFile = path.join(tmp, "vars.json");
      fs.writeFileSync(varsFile, JSON.stringify(vars));
      let actual = null, actualError = null;
      try {
        actual = execFileSync(
          args.kandil,
          ["template", "--template", path.join(args.templates, tf), "--messages", varsFile, "--now", String(NOW_SECONDS)],
          { env: { ...process.env, TZ: "UTC" }, stdio: ["ignore", "pipe", "pipe"] },
        );
      } catch (e) {
        actualError = (e.stderr ?? "").toString().trim() || String(e);
      }
      let ok, why = "";
      if (expectedError) {
        ok = actualError !== null;
        why = ok ? "" : `reference raised (${expectedError.message}) but kandil rendered`;
        if (ok) bothRaise++;
      } else if (actualError !== null) {
        ok = false;
        why = `kandil failed: ${actualError}`;
      } else {
        const want = Buffer.from(expected, "utf8");
        ok = want.equals(actual);
        if (!ok) {
          let k = 0;
          while (k < want.length && k < actual.length && want[k] === actual[k]) ++k;
          why = `first difference at byte ${k} (expected ${want.length} bytes, got ${actual.length}):\n` +
            `  expected: ${JSON.stringify(want.subarray(Math.max(0, k - 40), k + 60).toString())}\n` +
            `  actual:   ${JSON.stringify(actual.subarray(Math.max(0, k - 40), k + 60).toString())}`;
        }
      }
      if (ok) pass++;
      else fail++;
      if (!ok || args.verbose) console.log(`${ok ? "PASS" : "FAIL"} ${label}${why ? ": " + why : ""}`);
    }
  }
}
fs.rmSync(tmp, { recursive: true, force: true });
console.log(`jinja parity: ${pass} passed (${bothRaise} where both raise), ${fail} failed, ` +
  `${templates.length} templates x ${messageSets.length} message sets x 2`);
process.exit(fail === 0 && pass > 0 ? 0 : 1);
