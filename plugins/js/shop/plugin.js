// A Mira ranking plugin in JavaScript: product search, built with componentize-js's defaults.
//
// Build: `mira plugin build plugins/js/shop` (runs
// `componentize-js plugin.js --wit wit -n ranking-plugin -o shop.wasm`).
//
// `fuse` blends the reranker's P("yes") with the retrieval score, then weighs the product's
// rating and stock. `console.log` lines reach Mira's log under the plugin's name. The request
// parameter `probe` makes the plugin try what a sandboxed plugin cannot do (`http`, `clock`), so
// the tests can check that each fails cleanly: `instruction` then answers what happened.

const NAME = "jsshop";

// A field's column as numbers (undefined where a candidate has no value).
function numbers(c, name) {
  const col = c.fields.find((f) => f.name === name);
  if (col === undefined) return new Array(c.count).fill(undefined);
  const values = Array.from(col.values.val, Number);
  for (const i of col.missing) values[i] = undefined;
  return values;
}

function param(req, key) {
  const p = req.params.find((p) => p.key === key);
  return p === undefined ? undefined : p.value;
}

function probe(what) {
  if (what === "http") {
    // The request is made at once; its promise never settles inside a plugin call.
    let outcome = "pending";
    fetch("http://127.0.0.1/").then(
      () => (outcome = "answered"),
      (e) => (outcome = `failed: ${e}`),
    );
    return outcome;
  }
  if (what === "clock") {
    // Clocks read the request's time, and randomness is seeded per request.
    return `${Math.round(Date.now() / 1000)} ${Math.random().toFixed(6)}`;
  }
  throw new Error(`unknown probe ${what}`);
}

export const plugin = {
  describe() {
    return {
      name: NAME,
      version: "0.1.0",
      scenarios: ["jsshop"],
      rerankWindow: 20,
      tagVocabulary: ["dress", "shoes", "bag", "shirt"],
    };
  },

  instruction(req) {
    const what = param(req, "probe");
    if (what !== undefined) {
      try {
        return `probe ${what}: allowed: ${probe(what)}`;
      } catch (e) {
        return `probe ${what}: denied: ${e}`;
      }
    }
    return "Given a shopper's search, judge whether the product matches what they want";
  },

  render(req, candidate) {
    const lines = candidate.fields.map((f) => `${f.name}: ${f.value.val}`);
    if (candidate.tags.length > 0) lines.push(`tags: ${candidate.tags.join(", ")}`);
    if (candidate.caption !== undefined) lines.push(`image: ${candidate.caption}`);
    return lines.join("\n");
  },

  rerankDepth(req, retrievalScores) {
    return Math.min(retrievalScores.length, 20);
  },

  fuseFields() {
    return ["rating", "in_stock"];
  },

  // Column-wise (mira:ranking@0.2): the stage scores, and the fields named above.
  fuse(req, candidates) {
    const say = param(req, "say");
    if (say !== undefined) console.log(`jsshop says ${say}`);
    if (candidates.count === 0) return [];
    const { retrieval, rerank } = candidates.scores;
    const best = Math.max(...retrieval) || 1;
    const rating = numbers(candidates, "rating");
    const inStock = numbers(candidates, "in_stock");
    const scores = [];
    for (let i = 0; i < candidates.count; i++) {
      let base = retrieval[i] / best;
      if (!Number.isNaN(rerank[i])) base = 0.7 * rerank[i] + 0.3 * base;
      const r = rating[i];
      let factor = r === undefined ? 1 : 0.85 + (0.15 * Math.min(Math.max(r, 0), 5)) / 5;
      if (inStock[i] === 0) factor *= 0.6;
      scores.push(base * factor);
    }
    return scores;
  },
};
