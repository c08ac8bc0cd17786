// kandil serve against the official `openai` npm client (a real OpenAI API client):
//   node test.mjs --modules DIR/node_modules --url http://127.0.0.1:PORT --key KEY
// Every check is bounded in time; exits 1 on the first failed assertion.
import assert from "node:assert/strict";
import path from "node:path";
import { pathToFileURL } from "node:url";

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].slice(2)] = process.argv[i + 1];
const { default: OpenAI, APIError } = await import(
  pathToFileURL(path.join(args.modules, "openai", "index.mjs")).href);

const client = new OpenAI({ baseURL: `${args.url}/v1`, apiKey: args.key, timeout: 60000, maxRetries: 0 });
const model = "kandil";

async function chat(content, extra = {}) {
  return client.chat.completions.create({
    model, messages: [{ role: "user", content }], max_tokens: 12, temperature: 0,
    ignore_eos: true, ...extra });
}
async function streamText(stream) {
  let text = "", finish = null, usage = null, chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    const c = chunk.choices[0];
    if (!c) continue;
    text += (c.delta ? c.delta.content : c.text) ?? "";
    if (c.finish_reason) finish = c.finish_reason;
  }
  return { text, finish, usage, chunks };
}
async function completion(prompt, extra = {}) {
  const r = await client.completions.create({ model, prompt, max_tokens: 16, temperature: 0,
                                              ignore_eos: true, ...extra });
  return r.choices[0].text;
}
async function completionStream(prompt, extra = {}) {
  const s = await client.completions.create({ model, prompt, max_tokens: 16, temperature: 0,
                                              ignore_eos: true, stream: true, ...extra });
  return (await streamText(s)).text;
}
async function expectStatus(promise, status) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof APIError, `expected an APIError, got ${e}`);
    assert.equal(e.status, status, `status: ${e.message}`);
    return e;
  }
  assert.fail(`expected HTTP ${status}`);
}

const tests = {
  async models() {
    const list = await client.models.list();
    assert.equal(list.data.length, 1);
    assert.equal(list.data[0].object, "model");
  },
  async chatNonStreaming() {
    const r = await chat("Hello there");
    assert.equal(r.object, "chat.completion");
    assert.equal(r.choices[0].message.role, "assistant");
    assert.equal(typeof r.choices[0].message.content, "string");
    assert.equal(r.usage.completion_tokens, 12);
    assert.equal(r.choices[0].finish_reason, "length");
  },
  async chatStreamingEqualsNonStreaming() {
    const whole = await chat("Stream me");
    const s = await streamText(await client.chat.completions.create({
      model, messages: [{ role: "user", content: "Stream me" }], max_tokens: 12, temperature: 0,
      ignore_eos: true, stream: true, stream_options: { include_usage: true } }));
    assert.equal(s.text, whole.choices[0].message.content);
    assert.equal(s.finish, "length");
    assert.equal(s.usage.completion_tokens, 12);
  },
  async completions() {
    const a = await completion("Once upon a time");
    const b = await completionStream("Once upon a time");
    assert.equal(a, b);
    const lp = await client.completions.create({ model, prompt: "x", max_tokens: 3, temperature: 0,
                                                 ignore_eos: true, logprobs: 2 });
    assert.equal(lp.choices[0].logprobs.tokens.length, 3);
  },
  async errors() {
    await expectStatus(client.chat.completions.create({ model, messages: [] }), 400);
    await expectStatus(client.chat.completions.create({ model, messages: [{ role: "user", content: "x" }],
                                                        max_tokens: "many" }), 400);
    const e = await expectStatus(client.completions.create({ model, prompt: "x", max_tokens: 1000000 }), 400);
    assert.equal(e.code, "context_length_exceeded");
    const bad = new OpenAI({ baseURL: `${args.url}/v1`, apiKey: "wrong", maxRetries: 0, timeout: 10000 });
    await expectStatus(bad.models.list(), 401);
    await expectStatus(client.models.retrieve("no-such-model"), 404);
  },
  async concurrentStreamsEqualSolo() {
    const prompts = Array.from({ length: 16 }, (_, i) => `stream ${i}: ` + "ab".repeat(i));
    const solo = [];
    for (const p of prompts) solo.push(await completion(p));
    const together = await Promise.all(prompts.map((p) => completionStream(p)));
    for (let i = 0; i < prompts.length; i++) assert.equal(together[i], solo[i], `prompt ${i}`);
  },
  async perRequestLora() {
    const base = await completion("adapter prompt");
    const adapted = await completion("adapter prompt", { lora: [{ id: 0, scale: 1.0 }] });
    assert.notEqual(adapted, base);
    const [a2, b2] = await Promise.all([
      completionStream("adapter prompt", { lora: [{ id: 0, scale: 1.0 }] }),
      completionStream("adapter prompt")]);
    assert.equal(a2, adapted);
    assert.equal(b2, base);
  },
  async disconnectLeavesServerServing() {
    const ac = new AbortController();
    const s = await client.completions.create({ model, prompt: "long", max_tokens: 400,
                                                temperature: 0, ignore_eos: true, stream: true },
                                              { signal: ac.signal });
    try {
      for await (const _ of s) { ac.abort(); }
    } catch (e) { /* aborted */ }
    assert.equal(typeof (await completion("after abort")), "string");
  },
};

let failed = 0;
for (const [name, fn] of Object.entries(tests)) {
  const t0 = Date.now();
  try {
    await Promise.race([fn(), new Promise((_, rej) => setTimeout(() => rej(new Error("timed out")), 120000))]);
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.stack || e}`);
  }
}
console.log(failed ? `${failed} failed` : "all passed");
process.exit(failed ? 1 : 0);
