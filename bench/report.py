"""Render the benchmark results in bench/results/*.json as the README's tables.

    python bench/report.py            # rewrite README.md between the bench markers
    python bench/report.py --print    # print the section instead
    python bench/report.py --check    # exit 1 if any result is stale

Every number comes from a results file, each written by the script named
above its table; nothing is typed in by hand.

A result is stale when the code it measures (``rag_qa/``, ``bench/common.py``
and the script that wrote it) changed in a commit that the commit it was
measured at (``machine.commit``) does not contain. Measure on committed code:
a result records HEAD, so one measured on uncommitted changes counts as stale
once they are committed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import REPO, markdown_table  # noqa: E402

RESULTS = Path(__file__).parent / "results"
BEGIN, END = "<!-- bench:begin (bench/report.py writes this part) -->", "<!-- bench:end -->"
# The code every result measures, besides the script that wrote it (paths from the repository root).
MEASURED_CODE = ("rag_qa", "bench/common.py")
# What a script's results also depend on besides the code: its corpus and questions.
MEASURED_DATA = {"real_docs.py": ("tests/fixtures/realdocs",)}


def _load(results: Path, name: str) -> dict | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


# ---------------------------------------------------------------- staleness


@dataclass(frozen=True)
class Freshness:
    """Whether a result was measured on the code it reports on.

    ``stale`` is None where that could not be checked (no git, code not in
    git); ``note`` says which, in a line for the tables.
    """

    stale: bool | None
    note: str = ""


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess | None:
    """``git -C repo args``, or None where git is not installed."""
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    except OSError:
        return None


def last_change(repo: Path, paths: list[str]) -> str | None:
    """The last commit that changed any of ``paths``; None where git cannot say."""
    done = _git(repo, "log", "-1", "--format=%H", "--", *paths)
    if done is None or done.returncode != 0:
        return None
    return done.stdout.strip() or None


def code_of(script: str) -> list[str]:
    """The paths whose changes make a result written by ``bench/<script>`` stale."""
    return [*MEASURED_CODE, f"bench/{script}", *MEASURED_DATA.get(script, ())]


def freshness(result: dict, script: str, repo: Path = REPO) -> Freshness:
    """Whether ``result``, written by ``bench/<script>``, was measured at or after the last change to its code."""
    inside = _git(repo, "rev-parse", "--is-inside-work-tree")
    if inside is None or inside.returncode != 0:
        return Freshness(None, f"staleness could not be checked: {repo} is not a git repository (or git is missing)")
    changed = last_change(repo, code_of(script))
    if changed is None:
        return Freshness(None, f"staleness could not be checked: git has no history of {', '.join(code_of(script))}")
    measured = (result.get("machine") or {}).get("commit")
    if not measured:
        return Freshness(True, f"stale: no commit recorded, code last changed at {changed[:7]}; re-run `make bench`")
    ancestor = _git(repo, "merge-base", "--is-ancestor", changed, measured)
    if ancestor.returncode == 0:
        return Freshness(False, f"current: measured at {measured}, code last changed at {changed[:7]}")
    if ancestor.returncode == 1:
        return Freshness(
            True, f"stale: measured at {measured}, code changed since at {changed[:7]}; re-run `make bench`"
        )
    return Freshness(
        True, f"stale: measured at {measured}, a commit this repository does not have; re-run `make bench`"
    )


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
        [
            f"BM25, raw bm25s {r['versions'].get('bm25s')} (1 thread)",
            _n(bm["bm25s"]["qps"], 0),
            f"ragqa is {ragqa / bm['bm25s']['qps']:.1f}x faster",
        ],
        [
            f"BM25, rank-bm25 {r['versions'].get('rank-bm25')} `BM25Okapi`",
            _n(bm["rank-bm25"]["qps"], 1),
            f"ragqa is {ragqa / bm['rank-bm25']['qps']:,.0f}x faster",
        ],
        [
            f"dense, ragqa ({r['dense'].get('threads')} threads, FAISS {r['dense'].get('faiss')})",
            _n(r["dense"]["qps"], 0),
            "",
        ],
        ["hybrid, ragqa", _n(r["hybrid"]["qps"], 0), ""],
    ]
    c = r["corpus"]
    cmd = r.get("command", "python bench/retrieval_speed.py --data ../shared/data")
    return "\n".join(
        [
            f"`{cmd}` — one index over SQuAD v1.1 train paragraphs and SciFact abstracts, "
            f"{c['documents']:,} documents cut into {c['passages']:,} passages, {c['queries']:,} questions "
            f"(rank-bm25: the first {bm['rank-bm25']['queries']}); "
            f"queries/s over {bm['ragqa']['runs']} timed runs after a warm-up. {_machine(r['machine'])}.",
            "",
            markdown_table(["what", "queries/s", "ratio"], rows),
            "",
            ""
            if "build_s" not in bm["ragqa"]
            else markdown_table(
                ["BM25 system (own process)", "build s", "memory added by building MiB", "memory added by loading MiB"],
                [
                    [
                        name,
                        f"{bm[name]['build_s']:.2f}",
                        f"{bm[name]['rss_built_mb']:.0f}",
                        "no file format (pickle only)"
                        if bm[name].get("rss_loaded_mb") is None
                        else f"{bm[name]['rss_loaded_mb']:.0f} (memory-mapped)"
                        if name == "ragqa"
                        else f"{bm[name]['rss_loaded_mb']:.0f}",
                    ]
                    for name in ("ragqa", "bm25s", "rank-bm25")
                    if "build_s" in bm[name]
                ],
            ),
            "",
            f"ragqa's BM25 top-10 equals rank-bm25's on {100 * bm['agreement_top10_with_rank_bm25']:.0f}% "
            "of the questions compared. "
            f"Indexing (read, chunk, embed, BM25, FAISS, write): {r['indexing']['passages_per_s']:.0f} passages/s.",
        ]
    )


def reader_speed(r: dict) -> str:
    rows = [
        [g["device"], g["precision"], _n(g["exact_match"]), _n(g["f1"]), _n(g["passages_per_s"])]
        for g in r["gold_passages"]
    ]
    w, c = r["warm_ask"], r["cold_ask_s"]
    cmd = r.get("command", "python bench/reader_speed.py --data ../shared/data")
    return "\n".join(
        [
            f"`{cmd}` — the shipped reader on {r['questions']} held-out SQuAD questions with their gold passages. "
            f"{_machine(r['machine'])}.",
            "",
            markdown_table(["device", "runtime", "EM", "F1", "passages/s"], rows),
            "",
            f"Warm `ask` at top-{w['passages']} passages over {w['corpus_passages']:,} passages "
            f"({w['reader_precision']}): p50 {w['p50_ms']:.0f} ms, p95 {w['p95_ms']:.0f} ms ({w['asks']} questions). "
            "Cold `ragqa ask` (new process: imports, load index, encoder and reader, answer): "
            f"median {c['median']:.1f} s over {c['runs']} runs (min {c['min']:.1f}, max {c['max']:.1f})"
            + (
                f" with the default runtime ({c['runtime']}); {c['torch']['median']:.1f} s with `--runtime torch`."
                if "torch" in c
                else "."
            ),
        ]
    )


def peers(r: dict) -> str:
    sys.path.insert(0, str(Path(__file__).parent))
    import peers as peers_module

    v = r["versions"]
    cmd = r.get("command", "python bench/peers.py --data ../shared/data")
    return "\n".join(
        [
            f"`{cmd}` — every system in its own process, over the same passages and questions "
            f"(LangChain: langchain-community {v.get('langchain-community')}, "
            f"langchain-classic {v.get('langchain-classic')}; Haystack: haystack-ai {v.get('haystack-ai')}). "
            "Latency is per single query, top-100 for retrieval, top-10 retrieve + read end to end.",
            "",
            peers_module.format_tables(r),
        ]
    )


def scaling(r: dict, name: str = "scaling") -> str:
    hybrid = all("hybrid" in s for s in r["sizes"])  # results taken before hybrid was timed have no column
    rows = [
        [
            f"{s['passages']:,}",
            f"{s['build_wall_s']:.0f}",
            f"{s['build_peak_rss_mb']:,.0f}",
            f"{s['index_mb']:,.0f}",
            f"{s['rss_added_by_load_mb']:,.0f}",
            f"{s['load_s']:.2f}",
            f"{s['bm25']['p50_ms']:.2f} / {s['bm25']['p95_ms']:.2f}",
            f"{s['dense']['p50_ms']:.1f} / {s['dense']['p95_ms']:.1f}",
            *([f"{s['hybrid']['p50_ms']:.1f} / {s['hybrid']['p95_ms']:.1f}"] if hybrid else []),
        ]
        for s in r["sizes"]
    ]
    sizes = ",".join(str(s["target_passages"]) for s in r["sizes"])
    cmd = r.get("command", f"python bench/scaling.py --data ../shared/data --sizes {sizes}")
    fast = str(r.get("encoder", "")).startswith("first layer")
    encoder = (
        " Embedded with the bundled encoder cut to its first layer and 32 tokens (`--fast-encoder`): same 384-d "
        "vectors, so sizes, memory, load and query times are those of a real index; build times are not."
        if fast
        else ""
    )
    return "\n".join(
        [
            f"`{cmd}` — `ragqa index` in its own process on synthetic documents of SQuAD and SciFact sentences, "
            f"then single top-10 queries.{encoder} {_machine(r['machine'])}.",
            "",
            markdown_table(
                [
                    "passages",
                    "build s",
                    "build peak RSS MiB",
                    "index on disk MiB",
                    "RSS added by loading MiB",
                    "load s",
                    "BM25 p50 / p95 ms",
                    "dense p50 / p95 ms",
                    *(["hybrid p50 / p95 ms"] if hybrid else []),
                ],
                rows,
            ),
            "",
            f"![{name}](bench/results/{name}.png)",
        ]
    )


def real_docs(r: dict) -> str:
    sys.path.insert(0, str(Path(__file__).parent))
    import real_docs as real_docs_module

    c, o, u = r["corpus"], r["overall"], r["unanswerable"]
    cmd = r.get("command", "python bench/real_docs.py")
    return "\n".join(
        [
            f"`{cmd}` — {len(c['files'])} documentation files of made-up tools (tests/fixtures/realdocs: Markdown, "
            f"HTML, a PDF manual, plain text, reStructuredText, a README without extension, gzip), "
            f"{o['questions']} questions with known answers and {u['questions']} the files cannot answer; "
            f"{len(c['indexed_files'])} of the files indexed. {_machine(r['machine'])}.",
            "",
            real_docs_module.table(r),
        ]
    )


def pdf_extract(r: dict) -> str:
    sys.path.insert(0, str(Path(__file__).parent))
    import pdf_extract as pdf_extract_module

    cmd = r.get("command", "python bench/pdf_extract.py")
    return "\n".join(
        [
            f"`{cmd}` — PDF text extraction on generated manuals (tests/fixtures/pdf: a contents page, running "
            "headers and footers, hyphenated line ends, two columns, a table, an index page), each library raw "
            "and after ragqa's cleaning; word F1 and order against the text the PDF was made from, "
            f"median of {r['repeat']} timed runs. {_machine(r['machine'])}.",
            "",
            pdf_extract_module.table(r["rows"]),
        ]
    )


def serve_load(r: dict) -> str:
    sys.path.insert(0, str(Path(__file__).parent))
    import serve_load as serve_load_module

    c, s = r["corpus"], r["settings"]
    cmd = r.get("command", "python bench/serve_load.py --data ../shared/data")
    ratio = r.get("batched_over_one_at_a_time")
    clean = all(m["clean_exit"] for m in r["modes"])
    return "\n".join(
        [
            f"`{cmd}` — a real `ragqa serve` process per mode ({r['modes'][0]['reader']}, "
            + ("the default runtime on this CPU" if not s.get("runtime") else f"`--runtime {s['runtime']}`")
            + f") over "
            f"{c['passages']:,} passages of held-out SQuAD articles; `POST /ask` at top-{s['top_k']} from "
            f"{s['clients']} concurrent clients over loopback on the same machine, the held-out questions in turn, "
            f"after one untimed round. {_machine(r['machine'])}.",
            "",
            serve_load_module.table(r),
            "",
            (f"Batched over one at a time: {ratio:.2f}x the requests/s. " if ratio else "")
            + (
                "Each server exited cleanly on SIGTERM."
                if clean
                else "A server did not stop cleanly on SIGTERM (see the results file)."
            ),
        ]
    )


def distributed(r: dict) -> str:
    sys.path.insert(0, str(Path(__file__).parent))
    import distributed as distributed_module

    c = r["corpus"]
    local = r["runs"][0]["passages_per_s"]
    best = max((run for run in r["runs"][1:]), key=lambda run: run["passages_per_s"], default=None)
    gain = (
        f"The fastest Ray build here ran at {best['passages_per_s'] / local:.2f}x the local engine's passages/s "
        f"({best['workers']} encoder workers on {r['machine']['cores']} cores): on one small machine Ray buys "
        "little but start-up time; what it gives is the same index from a cluster's CPUs and GPUs."
        if best
        else ""
    )
    return "\n".join(
        [
            f"`{r['command']}` — `ragqa index` in its own process over {c['documents']:,} SQuAD v1.1 train "
            f"paragraphs, one text file each ({c['passages']:,} passages), from an empty index folder: the local "
            "engine, then `--engine ray` on a local Ray that the build starts (its start-up included). "
            f"{_machine(r['machine'])}.",
            "",
            distributed_module.table(r),
            "",
            gain,
        ]
    )


# (title, results file, script that writes it, renderer), in the README's order.
TABLES = (
    ("BM25 and retrieval speed", "retrieval_speed", "retrieval_speed.py", retrieval_speed),
    ("Against LangChain and Haystack", "peers", "peers.py", peers),
    ("Reader", "reader_speed", "reader_speed.py", reader_speed),
    ("Scaling and memory", "scaling", "scaling.py", scaling),
    ("Scaling at `make bench` size", "scaling_quick", "scaling.py", lambda r: scaling(r, "scaling_quick")),
    ("Scaling to a million passages", "scaling_1m", "scaling.py", lambda r: scaling(r, "scaling_1m")),
    ("Loading 200,000 passages", "scaling_200k", "scaling.py", lambda r: scaling(r, "scaling_200k")),
    ("Answers on real documents", "real_docs", "real_docs.py", real_docs),
    ("PDF extraction", "pdf_extract", "pdf_extract.py", pdf_extract),
    ("`ragqa serve` under load", "serve_load", "serve_load.py", serve_load),
    ("Index builds on Ray", "distributed", "distributed.py", distributed),
)


def _results(results: Path):
    """``(title, name, script, render, result)`` for each results file present."""
    for title, name, script, render in TABLES:
        data = _load(results, name)
        if data is not None:
            yield title, name, script, render, data


def section(results: Path = RESULTS, repo: Path = REPO) -> str:
    """The README section: one table per results file, each marked when stale or unchecked."""
    parts = []
    for title, _, script, render, data in _results(results):
        verdict = freshness(data, script, repo)
        mark = "" if verdict.stale is False else f"> {verdict.note}\n\n"
        parts.append(f"### {title}\n\n{mark}{render(data)}\n")
    return "\n".join(parts)


def check(results: Path = RESULTS, repo: Path = REPO) -> int:
    """Print each result's freshness; the number of stale results."""
    stale = 0
    for _, name, script, _, data in _results(results):
        verdict = freshness(data, script, repo)
        stale += bool(verdict.stale)
        print(f"{name}: {verdict.note}")
    return stale


def main(argv: list[str] | None = None) -> None:
    """Rewrite the README section, print it, or check the results' freshness."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", type=Path, default=REPO / "README.md")
    parser.add_argument(
        "--print", dest="just_print", action="store_true", help="Print the section; leave README.md alone."
    )
    parser.add_argument(
        "--check", action="store_true", help="Say which results are stale and exit 1 if any is; leave README.md alone."
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="Folder of results files.")
    parser.add_argument("--repo", type=Path, default=REPO, help="Git repository of the measured code.")
    args = parser.parse_args(argv)
    if args.check:
        if check(args.results, args.repo):
            raise SystemExit(1)
        return
    text = section(args.results, args.repo)
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
