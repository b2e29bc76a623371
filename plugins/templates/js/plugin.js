// {{name}}: a Mira ranking plugin in JavaScript.
//
// Build with `mira plugin build .` (componentize-js, default settings), try it with
// `mira plugin test {{name}}.wasm`. `console.log` lines go to Mira's log under the plugin's name.
// The plugin has no files, network or environment; clocks read the request's time, and a
// `fetch` never completes.

// The candidate's first numeric value of field `name`, or undefined.
function number(c, name) {
  for (const f of c.fields) {
    if (f.name !== name) continue;
    if (f.value.tag === "number") return f.value.val;
    if (f.value.tag === "integer") return Number(f.value.val);
  }
  return undefined;
}

export const plugin = {
  describe() {
    return {
      name: "{{name}}",
      version: "0.1.0",
      scenarios: ["{{name}}"],
      rerankWindow: 50,
      tagVocabulary: [],
    };
  },

  instruction(req) {
    return "Given a search query, judge whether the document answers it";
  },

  render(req, candidate) {
    const lines = candidate.fields.map((f) => `${f.name}: ${f.value.val}`);
    if (candidate.tags.length > 0) lines.push(`tags: ${candidate.tags.join(", ")}`);
    if (candidate.caption !== undefined) lines.push(`image: ${candidate.caption}`);
    return lines.join("\n");
  },

  rerankDepth(req, retrievalScores) {
    return Math.min(retrievalScores.length, 50);
  },

  // P("yes") blended with retrieval, nudged by a `rating` field when present.
  fuse(req, candidates) {
    if (candidates.length === 0) return [];
    const best = Math.max(...candidates.map((c) => c.scores.retrieval)) || 1;
    return candidates.map((c) => {
      let base = c.scores.retrieval / best;
      if (c.scores.rerank !== undefined) base = 0.7 * c.scores.rerank + 0.3 * base;
      const rating = number(c, "rating") ?? 3;
      return base * (0.9 + 0.02 * Math.min(Math.max(rating, 0), 5));
    });
  },
};
