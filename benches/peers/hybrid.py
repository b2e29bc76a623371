"""LanceDB (embedded) on the documents `mira-bench ann` wrote: time to searchable and hybrid
(full-text + vector + RRF) latency, against Mira's figures from the same data in mira.json.

LanceDB gets the index people use for this (IVF_HNSW_SQ, m 16, ef_construction 128, dot) and its
full-text index on the texts; its `nprobes` / `ef` are raised until vector recall@10 reaches 0.95
(or the largest tried), and that setting serves the hybrid queries, as Mira's defaults do.

    python benches/peers/hybrid.py <data-dir>
"""

import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

# Lance logs a deprecation warning per query otherwise.
os.environ.setdefault("LANCE_LOG", "error")
os.environ.setdefault("RUST_LOG", "error")

K = 10


def main():
    data = sys.argv[1]
    mira = json.load(open(os.path.join(data, "mira.json")))
    dim = mira["dim"]
    base = np.fromfile(os.path.join(data, "base.f32"), dtype="<f4").reshape(-1, dim)
    queries = np.fromfile(os.path.join(data, "queries.f32"), dtype="<f4").reshape(-1, dim)
    gt = np.fromfile(os.path.join(data, "gt.u32"), dtype="<u4").reshape(-1, K)
    texts = open(os.path.join(data, "texts.txt")).read().split("\n")
    query_texts = open(os.path.join(data, "query_texts.txt")).read().split("\n")

    import lancedb
    import pyarrow as pa

    work = tempfile.mkdtemp(prefix="lancedb-peer-")
    try:
        db = lancedb.connect(work)
        table = pa.table(
            {
                "id": pa.array(np.arange(len(base), dtype=np.uint32)),
                "title": pa.array(texts),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(base.reshape(-1)), dim),
            }
        )
        start = time.perf_counter()
        tbl = db.create_table("docs", table)
        ingest = time.perf_counter() - start
        tbl.create_index(metric="dot", index_type="IVF_HNSW_SQ", m=16, ef_construction=128)
        tbl.create_fts_index("title")
        searchable = time.perf_counter() - start

        def vector_ids(q, nprobes, ef):
            rows = tbl.search(q, vector_column_name="vector").distance_type("dot").nprobes(nprobes).ef(ef).limit(K).select(["id"]).to_list()
            return [r["id"] for r in rows]

        chosen = None
        for nprobes, ef in [(10, 64), (20, 100), (40, 150), (80, 200), (160, 300)]:
            found = [vector_ids(q, nprobes, ef) for q in queries[:200]]
            recall = float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, gt[:200])]))
            chosen = (nprobes, ef, recall)
            if recall >= 0.95:
                break
        nprobes, ef, recall = chosen

        def hybrid(i):
            return (
                tbl.search(query_type="hybrid", vector_column_name="vector")
                .vector(queries[i])
                .text(query_texts[i])
                .distance_type("dot")
                .nprobes(nprobes)
                .ef(ef)
                .limit(K)
                .select(["id"])
                .to_list()
            )

        for i in range(20):
            hybrid(i)
        ms = []
        for i in range(len(queries)):
            t = time.perf_counter()
            hybrid(i)
            ms.append((time.perf_counter() - t) * 1000)
        ms.sort()
        p50, p99 = ms[len(ms) // 2], ms[int(round((len(ms) - 1) * 0.99))]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    out = {
        "ingest_secs": ingest,
        "time_to_searchable_secs": searchable,
        "vector_recall": recall,
        "nprobes": nprobes,
        "ef": ef,
        "hybrid_p50_ms": p50,
        "hybrid_p99_ms": p99,
    }
    json.dump(out, open(os.path.join(data, "lancedb.json"), "w"), indent=2)
    print(f"{len(base)} documents, {len(queries)} hybrid queries (BM25/FTS + kNN + RRF, top {K})")
    print(f"  LanceDB: p50 {p50:.2f} ms, p99 {p99:.2f} ms (vector recall {recall:.3f} at nprobes {nprobes}, ef {ef}); searchable in {searchable:.1f} s")
    print(f"  Mira:    p50 {mira['hybrid_p50_ms']:.2f} ms, p99 {mira['hybrid_p99_ms']:.2f} ms; searchable in {mira['time_to_searchable_secs']:.1f} s")
    print(f"  Mira's p50 is {p50 / mira['hybrid_p50_ms']:.1f}x faster; searchable {searchable / mira['time_to_searchable_secs']:.2f}x sooner")


if __name__ == "__main__":
    main()
