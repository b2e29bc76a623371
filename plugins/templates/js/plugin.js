// {{name}}: a Mira ranking plugin in JavaScript.
//
// Build with `mira plugin build .` (componentize-js, default settings), try it with
// `mira plugin test {{name}}.wasm`. `console.log` lines go to Mira's log under the plugin's name.
// The plugin has no files, network or environment; clocks read the request's time, and a
// `fetch` never completes.

// A field's column as numbers (undefined where a candidate has no value).
function numbers(c, name) {
  const col = c.fields.find((f) => f.name === name);
  if (col === undefined) return new Array(c.count).fill(undefined);
  const values = Array.from(col.values.val, Number);
  for (const i of col.missing) values[i] = undefined;
  return values;
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

  // The fields `fuse` reads: only these cross into the plugin, as columns.
  fuseFields() {
    return ["rating"];
  },

  // P("yes") blended with retrieval, nudged by a `rating` field when present.
  fuse(req, candidates) {
    if (candidates.count === 0) return [];
    const { retrieval, rerank } = candidates.scores;
    const best = Math.max(...retrieval) || 1;
    const rating = numbers(candidates, "rating");
    const scores = [];
    for (let i = 0; i < candidates.count; i++) {
      let base = retrieval[i] / best;
      if (!Number.isNaN(rerank[i])) base = 0.7 * rerank[i] + 0.3 * base;
      const r = rating[i] ?? 3;
      scores.push(base * (0.9 + 0.02 * Math.min(Math.max(r, 0), 5)));
    }
    return scores;
  },
};
