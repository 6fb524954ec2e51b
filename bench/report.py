"""Render the benchmark results in bench/results/*.json as the README's tables.

    python bench/report.py            # rewrite README.md between the bench markers
    python bench/report.py --print    # print the section instead

Every number comes from a results file, each written by the script named
above its table; nothing is typed in by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import markdown_table  # noqa: E402

RESULTS = Path(__file__).parent / "results"
BEGIN, END = "<!-- bench:begin (bench/report.py writes this part) -->", "<!-- bench:end -->"


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _machine(m: dict) -> str:
    gpu = m.get("gpu") or "no GPU"
    return f"{m['cpu']}, {m['cores']} cores, {gpu}, commit {m.get('commit')}"


def _n(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def retrieval_speed(r: dict) -> str:
    bm = r["bm25"]
    ragqa = bm["ragqa"]["qps"]
    rows = [
        ["BM25, ragqa (1 thread)", _n(ragqa, 0), "1.00"],
        [f"BM25, raw bm25s {r['versions'].get('bm25s')} (1 thread)", _n(bm["bm25s"]["qps"], 0), f"ragqa is {ragqa / bm['bm25s']['qps']:.1f}x faster"],
        [f"BM25, rank-bm25 {r['versions'].get('rank-bm25')} `BM25Okapi`", _n(bm["rank-bm25"]["qps"], 1), f"ragqa is {ragqa / bm['rank-bm25']['qps']:,.0f}x faster"],
        [f"dense, ragqa ({r['dense'].get('threads')} threads, FAISS {r['dense'].get('faiss')})", _n(r["dense"]["qps"], 0), ""],
        ["hybrid, ragqa", _n(r["hybrid"]["qps"], 0), ""],
    ]
    c = r["corpus"]
    return "\n".join([
        f"`{r.get('command', 'python bench/retrieval_speed.py --data ../shared/data')}` — one index over SQuAD v1.1 train paragraphs and SciFact abstracts, "
        f"{c['documents']:,} documents cut into {c['passages']:,} passages, {c['queries']:,} questions "
        f"(rank-bm25: the first {bm['rank-bm25']['queries']}); median of {bm['ragqa']['runs']} runs after a warm-up. {_machine(r['machine'])}.",
        "",
        markdown_table(["what", "queries/s", "ratio"], rows),
        "",
        "" if "build_s" not in bm["ragqa"] else markdown_table(
            ["BM25 system (own process)", "build s", "memory added by building MiB", "memory added by loading MiB"],
            [[name, f"{bm[name]['build_s']:.2f}", f"{bm[name]['rss_built_mb']:.0f}", "no file format (pickle only)" if bm[name].get("rss_loaded_mb") is None else f"{bm[name]['rss_loaded_mb']:.0f} (memory-mapped)" if name == "ragqa" else f"{bm[name]['rss_loaded_mb']:.0f}"]
             for name in ("ragqa", "bm25s", "rank-bm25") if "build_s" in bm[name]],
        ),
        "",
        f"ragqa's BM25 top-10 equals rank-bm25's on {100 * bm['agreement_top10_with_rank_bm25']:.0f}% of the questions compared. "
        f"Indexing (read, chunk, embed, BM25, FAISS, write): {r['indexing']['passages_per_s']:.0f} passages/s.",
    ])


def reader_speed(r: dict) -> str:
    rows = [[g["device"], g["precision"], _n(g["exact_match"]), _n(g["f1"]), _n(g["passages_per_s"])] for g in r["gold_passages"]]
    w, c = r["warm_ask"], r["cold_ask_s"]
    return "\n".join([
        f"`{r.get('command', 'python bench/reader_speed.py --data ../shared/data')}` — the shipped reader on {r['questions']} held-out SQuAD questions with their gold passages. {_machine(r['machine'])}.",
        "",
        markdown_table(["device", "runtime", "EM", "F1", "passages/s"], rows),
        "",
        f"Warm `ask` at top-{w['passages']} passages over {w['corpus_passages']:,} passages ({w['reader_precision']}): p50 {w['p50_ms']:.0f} ms, p95 {w['p95_ms']:.0f} ms ({w['asks']} questions). "
        f"Cold `ragqa ask` (new process: imports, load index, encoder and reader, answer): median {c['median']:.1f} s over {c['runs']} runs (min {c['min']:.1f}, max {c['max']:.1f})"
        + (f" with the default runtime ({c['runtime']}); {c['torch']['median']:.1f} s with `--runtime torch`." if "torch" in c else "."),
    ])


def peers(r: dict) -> str:
    sys.path.insert(0, str(Path(__file__).parent))
    import peers as peers_module

    v = r["versions"]
    return "\n".join([
        f"`{r.get('command', 'python bench/peers.py --data ../shared/data')}` — every system in its own process, over the same passages and questions "
        f"(LangChain: langchain-community {v.get('langchain-community')}, langchain-classic {v.get('langchain-classic')}; Haystack: haystack-ai {v.get('haystack-ai')}). "
        "Latency is per single query, top-100 for retrieval, top-10 retrieve + read end to end.",
        "",
        peers_module.format_tables(r),
    ])


def scaling(r: dict, name: str = "scaling") -> str:
    rows = [[f"{s['passages']:,}", f"{s['build_wall_s']:.0f}", f"{s['build_peak_rss_mb']:,.0f}", f"{s['index_mb']:,.0f}", f"{s['rss_added_by_load_mb']:,.0f}",
             f"{s['bm25']['p50_ms']:.2f} / {s['bm25']['p95_ms']:.2f}", f"{s['dense']['p50_ms']:.1f} / {s['dense']['p95_ms']:.1f}"] for s in r["sizes"]]
    sizes = ",".join(str(s["target_passages"]) for s in r["sizes"])
    return "\n".join([
        f"`{r.get('command', f'python bench/scaling.py --data ../shared/data --sizes {sizes}')}` — `ragqa index` in its own process on synthetic documents of SQuAD and SciFact sentences, "
        f"then single top-10 queries. {_machine(r['machine'])}.",
        "",
        markdown_table(["passages", "build s", "build peak RSS MiB", "index on disk MiB", "RSS added by loading MiB", "BM25 p50 / p95 ms", "dense p50 / p95 ms"], rows),
        "",
        f"![{name}](bench/results/{name}.png)",
    ])


def section() -> str:
    parts = []
    for title, name, render in (
        ("BM25 and retrieval speed", "retrieval_speed", retrieval_speed),
        ("Against LangChain and Haystack", "peers", peers),
        ("Reader", "reader_speed", reader_speed),
        ("Scaling and memory", "scaling", scaling),
        ("Scaling at `make bench` size", "scaling_quick", lambda r: scaling(r, "scaling_quick")),
    ):
        data = _load(name)
        if data is not None:
            parts.append(f"### {title}\n\n{render(data)}\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", type=Path, default=Path(__file__).parents[1] / "README.md")
    parser.add_argument("--print", dest="just_print", action="store_true", help="Print the section; leave README.md alone.")
    args = parser.parse_args(argv)
    text = section()
    if args.just_print:
        print(text)
        return
    readme = args.readme.read_text(encoding="utf-8")
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"{args.readme} has no bench markers ({BEGIN} ... {END})")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    args.readme.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}", encoding="utf-8")
    print(f"updated {args.readme}")


if __name__ == "__main__":
    main()
