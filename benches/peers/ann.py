"""FAISS IndexHNSWFlat and hnswlib on the vectors `mira-bench ann` wrote, against Mira's figures.

Reads <data>/base.f32, queries.f32, gt.u32 and mira.json (see bench/src/ann.rs), builds each
peer index with the same graph parameters (M 16, efConstruction 128) on every core, searches on
one thread sweeping ef, and prints queries/s at recall@10 >= 0.95 and >= 0.99 for each library
with Mira's ratio to the faster peer. Writes <data>/peers.json.

    python benches/peers/ann.py <data-dir>
"""

import json
import os
import sys
import time

import numpy as np

K = 10
EFS = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]


def load(data):
    mira = json.load(open(os.path.join(data, "mira.json")))
    dim = mira["dim"]
    base = np.fromfile(os.path.join(data, "base.f32"), dtype="<f4").reshape(-1, dim)
    queries = np.fromfile(os.path.join(data, "queries.f32"), dtype="<f4").reshape(-1, dim)
    gt = np.fromfile(os.path.join(data, "gt.u32"), dtype="<u4").reshape(-1, K)
    return mira, base, queries, gt


def recall(found, gt):
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, gt)]))


def sweep(search, queries, gt):
    points = []
    for ef in EFS:
        for q in queries[:20]:
            search(q, ef)
        start = time.perf_counter()
        found = [search(q, ef) for q in queries]
        qps = len(queries) / (time.perf_counter() - start)
        points.append({"ef": ef, "recall": recall(found, gt), "qps": qps})
        if points[-1]["recall"] >= 0.999:
            break
    return points


def faiss_run(base, queries, gt, threads):
    import faiss

    faiss.omp_set_num_threads(threads)
    index = faiss.IndexHNSWFlat(base.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 128
    start = time.perf_counter()
    index.add(base)
    build = time.perf_counter() - start
    faiss.omp_set_num_threads(1)
    params = faiss.SearchParametersHNSW()

    def search(q, ef):
        params.efSearch = ef
        _, ids = index.search(q.reshape(1, -1), K, params=params)
        return ids[0]

    return {"name": "faiss IndexHNSWFlat", "build_secs": build, "points": sweep(search, queries, gt)}


def hnswlib_run(base, queries, gt, threads):
    import hnswlib

    index = hnswlib.Index(space="ip", dim=base.shape[1])
    index.init_index(max_elements=len(base), M=16, ef_construction=128, random_seed=1)
    index.set_num_threads(threads)
    start = time.perf_counter()
    index.add_items(base, np.arange(len(base)))
    build = time.perf_counter() - start
    index.set_num_threads(1)

    def search(q, ef):
        index.set_ef(max(ef, K))
        ids, _ = index.knn_query(q.reshape(1, -1), k=K)
        return ids[0]

    return {"name": "hnswlib", "build_secs": build, "points": sweep(search, queries, gt)}


def best_at(points, floor):
    ok = [p["qps"] for p in points if p["recall"] >= floor]
    return max(ok) if ok else None


def main():
    data = sys.argv[1]
    mira, base, queries, gt = load(data)
    threads = os.cpu_count() or 1
    peers = [faiss_run(base, queries, gt, threads), hnswlib_run(base, queries, gt, threads)]
    json.dump(peers, open(os.path.join(data, "peers.json"), "w"), indent=2)
    print(f"{mira['docs']} x {mira['dim']}, {len(queries)} queries, recall@{K}, search on 1 thread, build on {threads}")
    rows = [(v["name"].replace("ann_", "mira hnsw "), v["build_secs"], v["points"]) for v in mira["variants"]]
    rows += [(p["name"], p["build_secs"], p["points"]) for p in peers]
    for floor in (0.95, 0.99):
        best_peer = max((best_at(p["points"], floor) or 0) for p in peers)
        print(f"\nrecall >= {floor}:")
        for name, build, points in rows:
            qps = best_at(points, floor)
            ratio = f"{qps / best_peer:.2f}x the faster peer" if qps and best_peer else "-"
            shown = f"{qps:,.0f} q/s" if qps else "not reached"
            print(f"  {name:<22} {shown:>14}   build {build:6.1f} s   {ratio}")
    print(f"\nexact scan (Mira): {mira['exact_qps']:,.0f} q/s")
    for f in mira.get("filtered", []):
        print(f"filtered {f['selectivity'] * 100:5.1f}%: recall {f['recall']:.4f}, {f['ms_per_query']:.2f} ms/query ({f['index']}), "
              f"{f['ms_per_query'] / f['exact_ms_per_query']:.2f}x the exact filtered search")


if __name__ == "__main__":
    main()
