"""{{name}}: a Mira ranking plugin in Python.

Build with `mira plugin build .` (componentize-py, default settings), try it with
`mira plugin test {{name}}.wasm`. `print()` lines go to Mira's log under the plugin's name.
The plugin has no files, network or environment; clocks read the request's time.
"""

from wit_world import exports
from wit_world.imports import host, types


def number(c: types.Candidate, name: str):
    """The candidate's first numeric value of field `name`, or None."""
    for f in c.fields:
        if f.name == name and isinstance(
            f.value, (types.FieldValue_Number, types.FieldValue_Integer)
        ):
            return float(f.value.value)
    return None


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

    def fuse(self, req: types.Request, candidates: list) -> list:
        """P("yes") blended with retrieval, nudged by a `rating` field when present."""
        best = max((c.scores.retrieval for c in candidates), default=1.0) or 1.0
        scores = []
        for c in candidates:
            base = c.scores.retrieval / best
            if c.scores.rerank is not None:
                base = 0.7 * c.scores.rerank + 0.3 * base
            rating = number(c, "rating")
            scores.append(base * (0.9 + 0.02 * min(max(rating or 3.0, 0.0), 5.0)))
        return scores
