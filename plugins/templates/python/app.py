"""{{name}}: a Mira ranking plugin in Python.

Build with `mira plugin build .` (componentize-py, default settings), try it with
`mira plugin test {{name}}.wasm`. `print()` lines go to Mira's log under the plugin's name.
The plugin has no files, network or environment; clocks read the request's time.
"""

from wit_world import exports
from wit_world.imports import columns, host, types


def numbers(c: columns.Candidates, name: str) -> list:
    """A field's column as floats (None where a candidate has no value)."""
    col = next((f for f in c.fields if f.name == name), None)
    if col is None:
        return [None] * c.count
    values = [float(x) for x in col.values.value]
    for i in col.missing:
        values[i] = None
    return values


class Plugin(exports.Plugin):
    def describe(self) -> types.Description:
        return types.Description(
            name="{{name}}",
            version="0.1.0",
            scenarios=["{{name}}"],
            rerank_window=50,
            tag_vocabulary=[],
        )

    def instruction(self, req: types.Request) -> str:
        return "Given a search query, judge whether the document answers it"

    def render(self, req: types.Request, candidate: types.Candidate) -> str:
        lines = [f"{f.name}: {f.value.value}" for f in candidate.fields]
        if candidate.tags:
            lines.append("tags: " + ", ".join(candidate.tags))
        if candidate.caption:
            lines.append("image: " + candidate.caption)
        return "\n".join(lines)

    def rerank_depth(self, req: types.Request, retrieval_scores: list) -> int:
        return min(len(retrieval_scores), 50)

    def fuse_fields(self) -> list:
        """The fields `fuse` reads: only these cross into the plugin, as columns."""
        return ["rating"]

    def fuse(self, req: types.Request, candidates: columns.Candidates) -> list:
        """P("yes") blended with retrieval, nudged by a `rating` field when present."""
        retrieval, rerank = candidates.scores.retrieval, candidates.scores.rerank
        best = max(retrieval, default=1.0) or 1.0
        rating = numbers(candidates, "rating")
        scores = []
        for i in range(candidates.count):
            base = retrieval[i] / best
            if rerank[i] == rerank[i]:  # not NaN: the candidate was reranked
                base = 0.7 * rerank[i] + 0.3 * base
            r = rating[i] if rating[i] is not None else 3.0
            scores.append(base * (0.9 + 0.02 * min(max(r, 0.0), 5.0)))
        return scores
