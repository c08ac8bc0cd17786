// Load generator for kandil serve (loopback only; Node 20's fetch, no packages):
//   node bench/serve_bench.mjs --url http://127.0.0.1:PORT --streams N --tokens T [--rounds R]
// Starts N concurrent streaming /v1/completions requests (distinct prompts, greedy, ignore_eos,
// T tokens each), R rounds; prints one JSON line: aggregate generated tokens/s over the wall
// time, TTFT p50/p99 (first token event), per-stream decode tokens/s.
const args = { streams: "1", tokens: "64", rounds: "1" };
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].slice(2)] = process.argv[i + 1];
const streams = Number(args.streams), tokens = Number(args.tokens), rounds = Number(args.rounds);
if (!args.url.startsWith("http://127.0.0.1") && !args.url.startsWith("http://localhost")) {
  throw new Error("loopback only");
}

async function one(i, round) {
  const t0 = performance.now();
  const res = await fetch(`${args.url}/v1/completions`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt: `Request ${round}-${i}: tell me a story about the number ${i}.`,
                           max_tokens: tokens, temperature: 0, ignore_eos: true, stream: true, logprobs: 0,
                           stream_options: { include_usage: true } }),
  });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const decoder = new TextDecoder();
  let buf = "", ttft = null, generated = 0;
  for await (const chunk of res.body) {
    buf += decoder.decode(chunk, { stream: true });
    let k;
    while ((k = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, k);
      buf = buf.slice(k + 2);
      if (!ev.startsWith("data: ") || ev === "data: [DONE]") continue;
      const j = JSON.parse(ev.slice(6));
      if (j.usage) generated = j.usage.completion_tokens;
      // The first token event: with logprobs on, every token gets a chunk even when its bytes
      // are an incomplete UTF-8 character (random-weight models emit many byte tokens).
      if (ttft === null && (j.choices?.[0]?.text || j.choices?.[0]?.logprobs)) {
        ttft = performance.now() - t0;
      }
    }
  }
  const total = performance.now() - t0;
  return { ttft, total, generated };
}

const pct = (v, p) => {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const results = [];
const t0 = performance.now();
for (let r = 0; r < rounds; r++) {
  results.push(...(await Promise.all(Array.from({ length: streams }, (_, i) => one(i, r)))));
}
const wall = (performance.now() - t0) / 1000;
const gen = results.reduce((a, r) => a + r.generated, 0);
const ttfts = results.map((r) => r.ttft ?? r.total);
const decode = results.map((r) => (r.generated - 1) / ((r.total - (r.ttft ?? 0)) / 1000));
console.log(JSON.stringify({
  streams, tokens, rounds, requests: results.length, generated: gen, wall_s: +wall.toFixed(2),
  aggregate_tps: +(gen / wall).toFixed(1),
  ttft_p50_ms: +pct(ttfts, 50).toFixed(0), ttft_p99_ms: +pct(ttfts, 99).toFixed(0),
  per_stream_decode_tps_p50: +pct(decode, 50).toFixed(1),
}));
