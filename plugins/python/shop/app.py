"""A Mira ranking plugin in Python: product search, built with componentize-py's defaults.

Build: `mira plugin build plugins/python/shop` (runs
`componentize-py -d wit -w ranking-plugin componentize app -o shop.wasm`).

`fuse` blends the reranker's P("yes") with the retrieval score, then weighs the product's rating
and stock. `print()` lines reach Mira's log under the plugin's name. The request parameter
`probe` makes the plugin try what a sandboxed plugin cannot do (`file`, `env`, `socket`, `http`),
so the tests can check that each fails cleanly: `instruction` then answers what happened.
"""

import os
import random
import time

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import columns, host, types

NAME = "pyshop"


def numbers(c: columns.Candidates, name: str) -> list:
    """A field's column as floats (None where a candidate has no value)."""
    col = next((f for f in c.fields if f.name == name), None)
    if col is None:
        return [None] * c.count
    values = [float(x) for x in col.values.value]
    for i in col.missing:
        values[i] = None
    return values


def param(req: types.Request, key: str):
    for p in req.params:
        if p.key == key:
            return p.value
    return None


def probe(what: str) -> str:
    """Tries something the sandbox denies; returns what happened."""
    if what == "file":
        with open("/etc/passwd") as f:
            return f.read()
    if what == "env":
        return os.environ["HOME"]
    if what == "socket":
        import socket

        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect(("127.0.0.1", 80))
        return "connected"
    if what == "http":
        import urllib.request

        return urllib.request.urlopen("http://127.0.0.1/").read().decode()
    if what == "clock":
        # Clocks read the request's time, and randomness is seeded per request.
        return f"{time.time():.0f} {random.random():.6f}"
    raise ValueError(f"unknown probe {what}")


class Plugin(exports.Plugin):
    def describe(self) -> types.Description:
        return types.Description(
            name=NAME,
            version="0.1.0",
            scenarios=["pyshop"],
            rerank_window=20,
            tag_vocabulary=["dress", "shoes", "bag", "shirt"],
        )

    def instruction(self, req: types.Request) -> str:
        what = param(req, "probe")
        if what is not None:
            try:
                return f"probe {what}: allowed: {probe(what)}"
            except Exception as e:  # the sandbox's refusal, as Python sees it
                return f"probe {what}: denied: {type(e).__name__}: {e}"
        return "Given a shopper's search, judge whether the product matches what they want"

    def render(self, req: types.Request, candidate: types.Candidate) -> str:
        lines = []
        for f in candidate.fields:
            lines.append(f"{f.name}: {f.value.value}")
        if candidate.tags:
            lines.append("tags: " + ", ".join(candidate.tags))
        if candidate.caption:
            lines.append("image: " + candidate.caption)
        return "\n".join(lines)

    def rerank_depth(self, req: types.Request, retrieval_scores: list) -> int:
        return min(len(retrieval_scores), 20)

    def fuse_fields(self) -> list:
        return ["rating", "in_stock"]

    def fuse(self, req: types.Request, candidates: columns.Candidates) -> list:
        """Column-wise (mira:ranking@0.2): the stage scores, and the fields named above."""
        if param(req, "say") is not None:
            print(f"pyshop says {param(req, 'say')}")
        if candidates.count == 0:
            return []
        retrieval = candidates.scores.retrieval
        rerank = candidates.scores.rerank
        best = max(retrieval) or 1.0
        rating, in_stock = numbers(candidates, "rating"), numbers(candidates, "in_stock")
        scores = []
        for i in range(candidates.count):
            base = retrieval[i] / best
            if rerank[i] == rerank[i]:  # not NaN: the candidate was reranked
                base = 0.7 * rerank[i] + 0.3 * base
            r = rating[i]
            factor = 0.85 + 0.15 * min(max(r, 0.0), 5.0) / 5.0 if r is not None else 1.0
            if in_stock[i] == 0.0:
                factor *= 0.6
            scores.append(base * factor)
        return scores
