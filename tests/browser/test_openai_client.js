// OpenAI's own client library (the `openai` npm package) against `knnlm serve`'s /v1/completions: a plain and a
// streamed completion with the same seed must give the same text, in the shape the library parses.
// Usage: node test_openai_client.js http://127.0.0.1:PORT
"use strict";
const OpenAI = require("openai");

(async () => {
  const client = new OpenAI({ baseURL: process.argv[2] + "/v1", apiKey: "unused", maxRetries: 0 });
  const ask = { model: "knnlm", prompt: "대한민국의 수도는", max_tokens: 6, temperature: 0.8, seed: 11, knn_lambda: 0.3, knn_k: 4 };
  const whole = await client.completions.create(ask);
  const text = whole.choices[0].text;
  let streamed = "", chunks = 0, finish = null;
  for await (const chunk of await client.completions.create({ ...ask, stream: true })) {
    streamed += chunk.choices[0].text;
    finish = chunk.choices[0].finish_reason || finish;
    chunks++;
  }
  const fails = [];
  if (!text) fails.push("empty completion");
  if (whole.usage.completion_tokens !== 6) fails.push(`usage ${JSON.stringify(whole.usage)}`);
  if (streamed !== text) fails.push(`streamed "${streamed}" differs from "${text}"`);
  if (finish !== "length" || chunks < 2) fails.push(`stream: ${chunks} chunks, finish ${finish}`);
  try {
    await client.completions.create({ ...ask, knn_lambda: 3 });
    fails.push("knn_lambda 3 accepted");
  } catch (e) {
    if (e.status !== 400 || !/knn_lambda/.test(e.message)) fails.push(`bad request: ${e.status} ${e.message}`);
  }
  fails.forEach((f) => console.error("FAIL: openai client: " + f));
  console.log(`test_openai_client.js: 5 checks, ${fails.length} failed ("${text}")`);
  process.exit(fails.length ? 1 : 0);
})().catch((e) => { console.error("FAIL: openai client: " + (e && e.stack || e)); process.exit(1); });
