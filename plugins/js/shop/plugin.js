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

function number(c, name) {
  for (const f of c.fields) {
    if (f.name !== name) continue;
    if (f.value.tag === "number") return f.value.val;
    if (f.value.tag === "integer") return Number(f.value.val);
    if (f.value.tag === "boolean") return f.value.val ? 1 : 0;
  }
  return undefined;
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

  fuse(req, candidates) {
    const say = param(req, "say");
    if (say !== undefined) console.log(`jsshop says ${say}`);
    if (candidates.length === 0) return [];
    const best = Math.max(...candidates.map((c) => c.scores.retrieval)) || 1;
    return candidates.map((c) => {
      let base = c.scores.retrieval / best;
      if (c.scores.rerank !== undefined) base = 0.7 * c.scores.rerank + 0.3 * base;
      const rating = number(c, "rating");
      let factor = rating === undefined ? 1 : 0.85 + (0.15 * Math.min(Math.max(rating, 0), 5)) / 5;
      if (number(c, "in_stock") === 0) factor *= 0.6;
      return base * factor;
    });
  },
};
