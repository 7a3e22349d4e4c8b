// The viewer in a real browser: Debian's chromium, headless, driven by puppeteer-core (which never downloads a
// browser). Usage: node test_viewer.js http://127.0.0.1:PORT [screenshot-dir]
// Against a running `knnlm serve` with a datastore: opens /?text=..., checks the tokens and their colours, clicks
// a token and checks its neighbours and passages against /v1/analyze, moves the λ and k sliders and checks the
// perplexity, and moves through the tokens with the keyboard.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const puppeteer = require("puppeteer-core");

const base = process.argv[2];
const shots = process.argv[3];
// half from the datastore's corpus (the memory helps), half not (it mostly hurts)
const TEXT = "야요이 시대는 홋카이도, 오키나와를 제외한 일본열도의 시대구분 중 하나이다. 대한민국의 수도는 서울이다.";
let failures = 0, checks = 0;
function check(what, ok, detail) {
  checks++;
  if (!ok) { failures++; console.error(`FAIL: ${what}${detail !== undefined ? ": " + detail : ""}`); }
}

(async () => {
  // what the page must show, from the API itself (the page asks with k 16, context 16, λ 0.25)
  const api = await (await fetch(base + "/v1/analyze", { method: "POST", body: JSON.stringify({ text: TEXT, k: 16, context: 16, lambda: 0.25 }) })).json();
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "knnlm-chromium-"));
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", `--user-data-dir=${profile}`],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 860 });
    const requests = [];
    page.on("request", (r) => requests.push(r.url()));
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(base + "/?text=" + encodeURIComponent(TEXT), { waitUntil: "load" });
    await page.waitForSelector("body[data-ready='1']", { timeout: 60000 });

    // the tokens, with a colour each
    const toks = await page.$$eval("#text .tok", (ss) => ss.map((s) => ({ text: s.textContent, bg: getComputedStyle(s).backgroundColor, delta: Number(s.dataset.delta) })));
    check("token count", toks.length === api.tokens.length, `${toks.length} vs ${api.tokens.length}`);
    check("token texts", toks.map((t) => t.text).join("") === api.tokens.map((t) => t.label).join(""));
    check("prefix", (await page.$eval("#text .prefix", (s) => s.textContent)) === api.prefix);
    for (let i = 0; i < toks.length; i++) {
      const t = api.tokens[i];
      const want = Math.log(0.25 * t.knn_probability + 0.75 * t.lm_probability) - Math.log(t.lm_probability);
      check(`token ${i} colour delta`, Math.abs(toks[i].delta - want) < 1e-3, `${toks[i].delta} vs ${want}`);
      const m = /rgba?\((\d+), (\d+), (\d+)(?:, ([\d.]+))?\)/.exec(toks[i].bg);
      check(`token ${i} coloured`, m !== null, toks[i].bg);
      if (m && Math.abs(want) > 0.05) {
        const green = Number(m[2]) > Number(m[1]);
        check(`token ${i} colour sign`, green === want > 0, `${toks[i].bg} for ${want}`);
      }
    }
    check("at least one token changed by the memory", toks.some((t) => Math.abs(t.delta) > 0.01));
    const pplKnn = async () => Number(await page.$eval("#pplKnn", (e) => e.textContent));
    const pplLm = Number(await page.$eval("#pplLm", (e) => e.textContent));
    check("LM perplexity as the API's", Math.abs(pplLm - api.lm_ppl) < 1e-3 * api.lm_ppl, `${pplLm} vs ${api.lm_ppl}`);
    const p0 = await pplKnn();
    check("kNN-LM perplexity as the API's", Math.abs(p0 - api.knnlm_ppl) < 1e-3 * api.knnlm_ppl, `${p0} vs ${api.knnlm_ppl}`);

    // click the token the memory changed most: its neighbours and their passages
    let best = 0;
    toks.forEach((t, i) => { if (Math.abs(t.delta) > Math.abs(toks[best].delta)) best = i; });
    const spans = await page.$$("#text .tok");
    await spans[best].click();
    await page.waitForSelector("#neighbors tr.neighbor");
    const rows = await page.$$eval("#neighbors tr.neighbor", (rs) => rs.map((r) => ({
      cells: [...r.querySelectorAll("td")].map((td) => td.textContent),
      mark: r.querySelector("mark").textContent,
      passage: r.querySelector(".passage").textContent,
    })));
    const t = api.tokens[best];
    check("neighbours shown", rows.length === t.neighbors.length, `${rows.length} vs ${t.neighbors.length}`);
    rows.forEach((r, j) => {
      const nb = t.neighbors[j];
      check(`neighbour ${j} entry`, r.cells[3] === String(nb.id), `${r.cells[3]} vs ${nb.id}`);
      check(`neighbour ${j} distance`, Math.abs(Number(r.cells[1]) - nb.distance) < 0.01, `${r.cells[1]} vs ${nb.distance}`);
      check(`neighbour ${j} value highlighted`, r.mark === nb.value, `${r.mark} vs ${nb.value}`);
      check(`neighbour ${j} passage`, nb.context !== null && nb.context.length > 0 && r.passage === nb.context + nb.value, `${r.passage}`);
    });
    check("three top lists", (await page.$$eval(".tops ol", (o) => o.length)) === 3);
    const lmTop = await page.$$eval(".tops ol", (o) => o[0].querySelectorAll("li").length);
    check("LM top list", lmTop === t.lm_top.length);
    if (shots) await page.screenshot({ path: path.join(shots, "viewer.png") });

    // the λ slider: 0 gives the LM's perplexity; 0.5 another value
    const setRange = (id, v) => page.$eval(id, (e, val) => { e.value = String(val); e.dispatchEvent(new Event("input")); }, v);
    await setRange("#lambda", 0);
    check("λ = 0 gives the LM's perplexity", Math.abs((await pplKnn()) - pplLm) < 1e-3, `${await pplKnn()} vs ${pplLm}`);
    await setRange("#lambda", 0.5);
    const p5 = await pplKnn();
    check("λ = 0.5 changes the perplexity", Math.abs(p5 - p0) > 1e-3, `${p5} vs ${p0}`);
    // the k slider: with k = 1 only the nearest neighbour counts; the perplexity is recomputed
    await setRange("#k", 1);
    const want1 = Math.exp(api.tokens.reduce((s, tk) => {
      const pk = tk.values[0] === tk.label_id ? 1 : 0;
      return s - Math.log(0.5 * pk + 0.5 * tk.lm_probability);
    }, 0) / api.tokens.length);
    check("k = 1 perplexity", Math.abs((await pplKnn()) - want1) < 1e-3 * want1, `${await pplKnn()} vs ${want1}`);
    check("k = 1 shows one neighbour", (await page.$$eval("#neighbors tr.neighbor", (r) => r.length)) === 1);
    await setRange("#k", 16);
    await setRange("#lambda", 0.25);

    // the keyboard: → selects the next token, Enter keeps it
    const sel = () => page.$eval("#text .tok.sel", (s) => Number(s.dataset.index));
    const start = best < toks.length - 1 ? best : best - 1;
    await spans[start].focus();
    await page.keyboard.press("Enter");
    await page.keyboard.press("ArrowRight");
    check("ArrowRight selects the next token", (await sel()) === start + 1, await sel());
    await page.keyboard.press("ArrowLeft");
    check("ArrowLeft selects the previous token", (await sel()) === start);
    if (shots) await page.screenshot({ path: path.join(shots, "viewer-keyboard.png") });

    check("no script error", errors.length === 0, errors.join("; "));
    check("nothing loaded from elsewhere", requests.every((u) => u.startsWith(base)), requests.filter((u) => !u.startsWith(base)).join(" "));
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  console.log(`test_viewer.js: ${checks} checks, ${failures} failed`);
  process.exit(failures ? 1 : 0);
})().catch((e) => { console.error("FAIL: " + (e && e.stack || e)); process.exit(1); });
