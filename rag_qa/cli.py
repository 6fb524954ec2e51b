"""The ``ragqa`` command line: a thin Click layer over the library.

Heavy modules (torch, transformers, faiss) are imported inside the
commands, so ``ragqa --help`` answers at once.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import textwrap
from pathlib import Path

import click

from rag_qa import __version__
from rag_qa.choices import MODES, RUNTIMES
from rag_qa.errors import RagQAError
from rag_qa.text import printable

DEFAULT_INDEX = "index"


class _OneLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {printable(record.getMessage(), keep_newlines=False)}"


def _setup_logging(quiet: bool, verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter())
    root = logging.getLogger("rag_qa")
    root.handlers[:] = [handler]
    root.setLevel(logging.ERROR if quiet else logging.DEBUG if verbose else logging.WARNING)
    root.propagate = False
    # Libraries underneath are chatty at INFO; keep their warnings only.
    for name in ("sentence_transformers", "transformers", "faiss", "bm25s", "pypdfium2"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # "Loading weights" bars


class RagQAGroup(click.Group):
    """Turns ragqa's own errors into one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RagQAError as exc:
            click.echo(f"Error: {printable(str(exc), keep_newlines=False)}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("Interrupted: nothing was changed.", err=True)
            ctx.exit(130)


index_dir_option = click.option(
    "--index-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_INDEX,
    show_default=True,
    help="Folder of the index.",
)


runtime_option = click.option(
    "--runtime",
    type=click.Choice(RUNTIMES),
    help="What runs the models: ONNX Runtime (fast start, CPU; onnx-int8 is faster and slightly less accurate) or "
    "torch. Default auto: onnx on a CPU-only machine.",
)


@click.group(cls=RagQAGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ragqa")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or warnings, only results and errors.")
@click.option("-v", "--verbose", is_flag=True, help="Log what happens underneath.")
@click.pass_context
def cli(ctx: click.Context, quiet: bool, verbose: bool) -> None:
    """Answer questions from your own documents, offline.

    \b
    Typical use:
      ragqa index docs/                 build (or update) the index in ./index
      ragqa search "how do I ...?"      the best passages for a question
      ragqa info                        what the index holds
    """
    ctx.ensure_object(dict)
    ctx.obj.update(quiet=quiet, verbose=verbose)
    _setup_logging(quiet, verbose)


@cli.command("index")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@index_dir_option
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML index settings (see configs/index.yaml).",
)
@click.option(
    "--encoder",
    type=click.Path(path_type=Path),
    help="Local sentence-transformers directory to embed with (default: the encoder shipped with ragqa, "
    "all-MiniLM-L6-v2 fine-tuned on SQuAD).",
)
@click.option(
    "--wait", type=float, default=0, show_default=True, help="Seconds to wait if another build holds the index."
)
@click.option(
    "--prune",
    is_flag=True,
    help="Allow removing documents: with PATHS, the index then holds exactly PATHS; without, documents whose files are "
    "gone are dropped however many.",
)
@click.option(
    "--follow-links", is_flag=True, default=None, help="Also read links to files outside the indexed folders."
)
@click.option(
    "--backend",
    type=click.Choice(("builtin", "milvus")),
    help="Where passages, BM25 and vectors live: ragqa's own files (builtin, the default for a new index) or a "
    "Milvus collection. An index keeps its backend unless told another.",
)
@click.option(
    "--milvus-uri",
    help="Milvus to use: a Milvus Lite file (default: milvus.db in the index folder) or a server, "
    "e.g. http://milvus:19530.",
)
@click.option(
    "--milvus-token-env",
    metavar="VAR",
    help="Environment variable holding the Milvus token (user:password or an API key); the token is never stored.",
)
@click.option(
    "--milvus-collection",
    metavar="NAME",
    help="The Milvus alias readers search (default: ragqa_<index folder>_<hash of its path>).",
)
@click.option(
    "--engine",
    type=click.Choice(("local", "ray")),
    default="local",
    show_default=True,
    help="Where reading, embedding and BM25 counting run: this process, or Ray (pip install 'ragqa[ray]'; "
    "a local Ray is started unless --ray-address names a cluster). Both write the same index.",
)
@click.option("--ray-address", metavar="ADDRESS", help="Ray cluster to join (auto: the one this machine is in).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Encoder workers on Ray (default: one per GPU asked for, else one per two CPUs).",
)
@click.option(
    "--gpus-per-worker",
    type=click.FloatRange(min=0),
    help="GPUs for each encoder worker on Ray (default: 1 when the cluster has GPUs, else 0; 0.5 shares one "
    "between two).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the build report as JSON.")
@click.pass_context
def index_cmd(
    ctx: click.Context,
    paths: tuple[Path, ...],
    index_dir: Path,
    config_path: Path | None,
    encoder: Path | None,
    wait: float,
    prune: bool,
    follow_links: bool | None,
    backend: str | None,
    milvus_uri: str | None,
    milvus_token_env: str | None,
    milvus_collection: str | None,
    engine: str,
    ray_address: str | None,
    workers: int | None,
    gpus_per_worker: float | None,
    as_json: bool,
) -> None:
    """Build or update the index from files and folders.

    PATHS are files or folders (searched recursively) of .txt, .md, .rst,
    .html, .pdf and .jsonl documents, text files without an extension (README,
    LICENSE) and any of these compressed as .gz. Markdown, HTML and PDF are read
    as the text a person sees (see README). Run it again to update: PATHS are added to
    those already indexed, and only new or changed passages are embedded.
    With no PATHS, the indexed paths are scanned again. Documents whose files
    are gone are dropped, but more than a few only with --prune; `ragqa
    remove PATH` takes documents out. The old index stays usable until the
    new one is complete.
    """
    from rag_qa.config import IndexConfig
    from rag_qa.retrieval.builder import build_index

    config = IndexConfig.from_yaml(config_path) if config_path else None
    report = build_index(
        list(paths) or None,
        index_dir,
        config=config,
        encoder=encoder,
        show_progress=not ctx.obj["quiet"],
        wait=wait,
        prune=prune,
        follow_links=follow_links,
        backend=backend,
        milvus_uri=milvus_uri,
        milvus_token_env=milvus_token_env,
        milvus_collection=milvus_collection,
        engine=engine,
        ray_address=ray_address,
        workers=workers,
        gpus_per_worker=gpus_per_worker,
    )
    _print_build(report, as_json)


@cli.command("remove")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@index_dir_option
@click.option(
    "--wait", type=float, default=0, show_default=True, help="Seconds to wait if another build holds the index."
)
@click.option("--json", "as_json", is_flag=True, help="Print the build report as JSON.")
@click.pass_context
def remove_cmd(ctx: click.Context, paths: tuple[Path, ...], index_dir: Path, wait: float, as_json: bool) -> None:
    """Take PATHS (indexed folders, or files and folders inside them) out of the index.

    They stay out when the index is updated, until they are indexed again
    with `ragqa index PATH`.
    """
    from rag_qa.retrieval.builder import build_index

    report = build_index(None, index_dir, show_progress=not ctx.obj["quiet"], wait=wait, prune=True, remove=list(paths))
    _print_build(report, as_json)


def _print_build(report, as_json: bool) -> None:
    if as_json:
        click.echo(
            json.dumps(
                {
                    "index_dir": str(report.directory),
                    "documents": report.documents,
                    "passages": report.passages,
                    "added": report.added,
                    "changed": report.changed,
                    "removed": report.removed,
                    "unchanged": report.unchanged,
                    "embedded": report.embedded,
                    "reused": report.reused,
                    "skipped": [{"path": p, "reason": r} for p, r in report.skipped],
                    "skip_summary": report.skip_summary,
                    "up_to_date": report.up_to_date,
                },
                indent=2,
            )
        )
    else:
        click.echo(printable(report.summary()))
    if not report.up_to_date:  # an index that did not change has its runtime ready
        _prepare_runtime(report.directory)


def _prepare_runtime(index_dir: Path) -> None:
    """Export the query encoder and the shipped reader for ONNX Runtime now
    (once), so that the first `ragqa search`/`ask` starts as fast as the next ones."""
    from rag_qa.errors import RagQAError
    from rag_qa.reading.reader import Reader
    from rag_qa.retrieval.index import Index
    from rag_qa.runtime import resolve_runtime

    if resolve_runtime("auto") != "onnx":
        return
    try:
        index = Index.load(index_dir, verify=False)
        if index.config.dense.runtime == "auto" and len(index):
            index.encoder.warm_up()  # loading it exports it
        Reader().warm_up()
    except RagQAError as exc:  # search/ask will say it again, with the fix
        logging.getLogger("rag_qa").warning("the models could not be prepared for ONNX Runtime: %s", exc)


def openable_path(source: str, source_root: str | None) -> str:
    """A passage's ``source`` as a path that opens from the working directory
    (:func:`rag_qa.pipeline.openable_path`)."""
    from rag_qa.pipeline import openable_path as _openable

    return _openable(source, source_root)


def _source_root(index) -> str | None:
    from rag_qa.pipeline import index_source_root

    return index_source_root(index)


def _location(passage, source_root: str | None, line: int | None = None, offset: int = 0) -> str:
    """``file.pdf p.12`` for a PDF (the page at ``offset`` into the passage),
    ``file:LINE`` when the line is known, else the file."""
    where = printable(openable_path(passage.source, source_root), keep_newlines=False)
    page = passage.page_at(offset)
    if page is not None:
        return f"{where} p.{page}"
    return f"{where}:{line}" if line else where


@cli.command("search")
@click.argument("query")
@index_dir_option
@click.option("-k", "--top-k", "k", type=click.IntRange(min=1), default=5, show_default=True, help="How many passages.")
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="hybrid",
    show_default=True,
    help="Retriever: keyword, embedding, or both fused.",
)
@click.option("--source", help="Only passages whose source path matches this glob, e.g. 'docs/*.md'.")
@click.option(
    "--encoder",
    type=click.Path(path_type=Path),
    help="Encoder directory, if it moved since the index was built (must be the same model).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the hits as JSON.")
def search_cmd(
    query: str, index_dir: Path, k: int, mode: str, source: str | None, encoder: Path | None, as_json: bool
) -> None:
    """Print the passages that best match QUERY."""
    from rag_qa.retrieval.index import Index

    idx = Index.load(index_dir, encoder=encoder)
    hits = idx.search(query, k=k, mode=mode, source=source)
    root = _source_root(idx)
    if as_json:
        from rag_qa.pipeline import hit_dict

        rows = [hit_dict(h, root) for h in hits]
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not hits:
        click.echo("No passage matches.")
        return
    for hit in hits:
        p = hit.passage
        click.echo(
            click.style(f"{hit.rank}. {_location(p, root, p.line_at(0))} [{p.start}:{p.end}]", bold=True)
            + f"  score {hit.score:.4f}"
        )
        snippet = printable(" ".join(p.text.split()))
        click.echo(f"   {snippet[:300]}{'...' if len(snippet) > 300 else ''}\n")


@cli.command("info")
@index_dir_option
@click.option(
    "--verify",
    is_flag=True,
    help="Also read every index file against the checksums recorded when it was built (loading checks only "
    "sizes and counts). Exits 1 naming the first file that differs.",
)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def info_cmd(index_dir: Path, verify: bool, as_json: bool) -> None:
    """Show what the index holds and how it was built."""
    from rag_qa.retrieval.index import Index

    index = Index.load(index_dir)
    info = index.info()
    if verify:
        info["verified_bytes"] = index.verify()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    enc = info["encoder"]
    lines = [
        f"Index:      {info['index_dir']} (format {info['format_version']}, ragqa {info['ragqa_version']}, built "
        f"{info['created_at']})",
        f"Documents:  {info['documents']}",
        f"Passages:   {info['passages']} ({info['chunking']['size']} words, {info['chunking']['overlap']} overlap)",
        f"Vocabulary: {info['vocabulary']} BM25 terms (k1={info['bm25']['k1']}, b={info['bm25']['b']})",
        f"Encoder:    {'the default (all-MiniLM-L6-v2 fine-tuned on SQuAD)' if enc['default'] else enc['path']} "
        f"({enc['dimension']}-d, sha256 {enc['sha256'][:12]})",
        (
            f"Milvus:     {info['milvus']['uri']}, alias {info['milvus']['alias']} -> {info['milvus']['collection']} "
            f"({info['faiss']['type']}, {info['faiss']['ntotal']} vectors)"
            if info.get("backend") == "milvus"
            else f"FAISS:      {info['faiss']['type']}, {info['faiss']['ntotal']} vectors"
        ),
        f"Fusion:     {info['fusion']['method']}",
        f"Size:       {info['bytes'] / 2**20:.1f} MiB ({info['disk_bytes'] / 2**20:.1f} MiB on disk, with the previous "
        "version kept for readers still loading it)",
        f"Sources:    {', '.join(info['roots'])}",
    ]
    if verify:
        lines.append(f"Verified:   every checksum matches ({info['verified_bytes'] / 2**20:.1f} MiB read)")
    click.echo("\n".join(printable(line, keep_newlines=False) for line in lines))


def _shipped_no_answer_threshold() -> float:
    """The no-answer threshold of the reader shipped with ragqa, from its fitted settings."""
    from rag_qa.reading.reader import ReaderConfig, default_reader_path, load_reader_settings

    return ReaderConfig().with_fitted(load_reader_settings(default_reader_path())).no_answer_threshold


class _ThresholdOption(click.Option):
    """``--no-answer-threshold``, whose help states the shipped reader's value (read only when help is shown)."""

    def get_help_record(self, ctx: click.Context):
        try:
            default = f"{_shipped_no_answer_threshold():.2f}"
        except RagQAError:
            default = "unknown (the shipped reader's settings could not be read)"
        self.help = (
            "How far the best span's score must beat 'no answer' to be given (higher = answer less often; -inf: "
            f"always answer). Default: the reader's fitted value, {default} for the shipped reader."
        )
        return super().get_help_record(ctx)


def _print_answer(answer, root: str | None, prefix: str = "") -> None:
    click.echo(
        click.style(prefix + printable(" ".join(answer.text.split())), bold=True) + f"   confidence {answer.score:.2f}"
    )
    where = _location(answer.passage, root, answer.line, answer.start - answer.passage.start)
    click.echo(f"   {where} (characters {answer.start}-{answer.end})")
    context, at = answer.context, answer.offset_in_context
    end = at + answer.end - answer.start  # the span in the source (``text`` squeezes its white space)
    before, found, after = (
        printable(" ".join(part.split())) for part in (context[:at], context[at:end], context[end:])
    )
    gap_before = " " if context[:at][-1:].isspace() else ""
    gap_after = " " if context[end:][:1].isspace() else ""
    marked = click.style(f"[{found}]", fg="green", bold=True)
    click.echo(f'   "{before}{gap_before}{marked}{gap_after}{after}"')


def _marked_passage(text: str, spans: list[tuple[int, int]], styled: bool) -> str:
    """``text`` on one line with each ``(start, end)`` span marked: bold and underlined
    on a terminal, else between ``[[`` and ``]]``."""
    out, at = [], 0
    for start, end in sorted(spans):
        if start < at:  # overlaps a span already marked
            continue
        found = printable(text[start:end])
        out += [printable(text[at:start]), click.style(found, bold=True, underline=True) if styled else f"[[{found}]]"]
        at = end
    out.append(printable(text[at:]))
    return re.sub(r"\s+", " ", "".join(out)).strip()


def _print_passages(result, shown: list, root: str | None) -> None:
    styled = sys.stdout.isatty()
    click.echo("\nPassages read:")
    for hit in result.passages:
        p = hit.passage
        # An answer is marked in every passage read that holds it (passages overlap).
        spans = [
            (a.start - p.start, a.end - p.start)
            for a in shown
            if a.passage.doc_id == p.doc_id and p.start <= a.start and a.end <= p.end
        ]
        click.echo(
            f"  {hit.rank}. {_location(p, root, p.line_at(0))} (characters {p.start}-{p.end})  "
            f"retriever score {hit.score:.4f}"
        )
        click.echo(
            textwrap.fill(
                _marked_passage(p.text, spans, styled),
                width=100,
                initial_indent="     ",
                subsequent_indent="     ",
                break_long_words=False,
                break_on_hyphens=False,
            )
        )


@cli.command("ask")
@click.argument("question")
@index_dir_option
@click.option("-k", "--top-k", "k", type=click.IntRange(min=1), default=10, show_default=True, help="Passages to read.")
@click.option(
    "--answers", "n_answers", type=click.IntRange(min=1), default=1, show_default=True, help="How many answers to show."
)
@click.option("--mode", type=click.Choice(MODES), default="hybrid", show_default=True, help="Retriever.")
@click.option("--source", help="Only read passages whose source path matches this glob.")
@click.option(
    "--reader",
    "reader_dir",
    type=click.Path(path_type=Path),
    help="Reader model directory (default: the reader shipped with ragqa).",
)
@click.option("--no-answer-threshold", type=float, cls=_ThresholdOption)
@click.option(
    "--show-context",
    is_flag=True,
    help="Also print the passages that were read: where each is, its retriever score and its text, answers marked.",
)
@click.option(
    "--explain",
    is_flag=True,
    help="Also print the margin over 'no answer' against the threshold, and the best candidate when ragqa abstains.",
)
@runtime_option
@click.option("--json", "as_json", is_flag=True, help="Print answers as JSON.")
@click.pass_context
def ask_cmd(
    ctx: click.Context,
    question: str,
    index_dir: Path,
    k: int,
    n_answers: int,
    mode: str,
    source: str | None,
    reader_dir: Path | None,
    no_answer_threshold: float | None,
    show_context: bool,
    explain: bool,
    runtime: str | None,
    as_json: bool,
) -> None:
    """Answer QUESTION from the indexed documents.

    Prints the answer, its confidence, where it is (file and line, or PDF
    page; characters) and the sentence around it. Says so plainly when the
    documents hold no answer, and warns (on stderr) about a question the
    reader reads badly: a long one, or one that does not look like English.
    """
    from rag_qa.pipeline import RagQA

    qa = RagQA.load(index_dir, reader=reader_dir, runtime=runtime)
    result = qa.ask_full(
        question,
        top_k_passages=k,
        top_k_answers=n_answers,
        mode=mode,
        source=source,
        no_answer_threshold=no_answer_threshold,
    )
    root = result.source_root
    if as_json:
        click.echo(json.dumps(result.to_dict(with_passages=show_context), indent=2, ensure_ascii=False))
        return
    if not ctx.find_root().obj.get("quiet"):
        for warning in result.warnings:
            click.echo(f"warning: {warning}", err=True)
    margin, threshold = result.no_answer_margin, result.no_answer_threshold
    if result.abstained:
        best = result.best_candidate
        if not result.passages:
            click.echo("No answer found in the indexed documents: no passage matched.")
        elif best is None:
            click.echo("No answer found in the indexed documents: the reader found no span in the passages read.")
        else:
            click.echo(
                f"No answer found in the indexed documents: the best candidate's margin over 'no answer' is "
                f"{margin:.2f}, below the no-answer threshold {threshold:.2f}"
                + ("." if explain else " (--explain shows it).")
            )
            if explain:
                click.echo("\nBest candidate (not given as an answer):")
                _print_answer(best, root)
    for i, answer in enumerate(result.answers, start=1):
        _print_answer(answer, root, f"{i}. " if len(result.answers) > 1 else "")
    if explain and not result.abstained:
        click.echo(
            f"\nThe best answer's margin over 'no answer' is {margin:.2f} (no-answer threshold {threshold:.2f})."
        )
    if show_context:
        shown = result.answers or ([result.best_candidate] if explain and result.best_candidate else [])
        _print_passages(result, shown, root)


@cli.command("eval-reader")
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQuAD JSON (.json or .json.gz) with gold passages.",
)
@click.option(
    "--reader", "reader_dir", type=click.Path(path_type=Path), help="Reader directory (default: the shipped reader)."
)
@click.option("--limit", type=int, help="Evaluate on the first N questions.")
@click.option(
    "--held-out",
    is_flag=True,
    help="Only the test half of the questions of the articles ragqa holds out of training (for the SQuAD train file; "
    "the tuning half chooses checkpoints).",
)
@click.option(
    "--answerless",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Also pair this many answerless paragraphs of its article with each question (1 = a SQuAD v2.0-style set, "
    "half unanswerable) and report abstention.",
)
@click.option(
    "--answerless-from",
    type=click.Choice(("article", "retrieved")),
    default="article",
    show_default=True,
    help="Where --answerless paragraphs come from: the question's article, or the paragraphs of other articles that "
    "BM25 ranks highest for the question.",
)
@runtime_option
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def eval_reader_cmd(
    data_path: Path,
    reader_dir: Path | None,
    limit: int | None,
    held_out: bool,
    answerless: float,
    answerless_from: str,
    runtime: str | None,
    as_json: bool,
) -> None:
    """SQuAD exact match and F1 of a reader given the gold passages, and its speed.

    With --answerless, or on a SQuAD v2.0 file, also how well it abstains:
    HasAns EM/F1, NoAns accuracy and overall EM/F1 (the v2.0 metric) at the
    reader's no-answer threshold and at the best one."""
    from rag_qa.evaluation.reader_eval import evaluate_reader
    from rag_qa.reading.reader import Reader

    reader = Reader(reader_dir, runtime=runtime or "auto")
    results = evaluate_reader(
        reader, data_path, limit=limit, held_out_only=held_out, answerless=answerless, answerless_from=answerless_from
    )
    results["runtime"] = reader.backend
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    click.echo(
        f"EM {results['exact_match']:.2f}  F1 {results['f1']:.2f}  on {results['questions']:,} questions; "
        f"{results['passages_per_s']:.1f} passages/s ({results['runtime']})"
    )
    if "abstention" in results:
        a = results["abstention"]
        click.echo(
            f"With {a['unanswerable']:,} answerless passages (always abstaining scores EM "
            f"{a['always_abstain_exact_match']:.1f}):"
        )
        rows = (
            ("reader's threshold", a["at_reader_threshold"]),
            ("best threshold", a["at_best_threshold"]),
            ("HasAns EM -2 threshold", a["at_2_points_has_ans_cost"]),
        )
        for name, row in rows:
            click.echo(
                f"  {name} {row['threshold']:.2f}: overall EM {row['exact_match']:.1f} F1 {row['f1']:.1f}; "
                f"HasAns EM {row['has_ans_exact_match']:.1f} F1 {row['has_ans_f1']:.1f}; NoAns accuracy "
                f"{row['no_ans_accuracy']:.1f}"
            )


@cli.command("eval")
@click.option(
    "--data",
    "data_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQuAD JSON (.json or .json.gz): paragraphs are the corpus.",
)
@click.option(
    "--beir",
    "beir_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv.",
)
@click.option("--split", default="test", show_default=True, help="BEIR qrels split.")
@click.option(
    "--held-out",
    is_flag=True,
    help="Only the test half of what train-encoder/train-reader hold out (SQuAD articles by title hash; BEIR queries, "
    "20%, seed 0); the tuning half chooses settings.",
)
@click.option("--limit", type=int, help="Evaluate on N questions (a seeded sample).")
@click.option(
    "--index-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Build (or reuse and update) the evaluation index here; default: a temporary folder.",
)
@click.option("--modes", default="bm25,dense,hybrid", show_default=True, help="Retrieval modes to score.")
@click.option("--encoder", type=click.Path(path_type=Path), help="Encoder directory (default: the bundled one).")
@click.option(
    "--reader", "reader_dir", type=click.Path(path_type=Path), help="Reader directory (default: the shipped reader)."
)
@click.option("--no-reader", is_flag=True, help="Retrieval metrics only.")
@runtime_option
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG of recall@k per mode.")
@click.pass_context
def eval_cmd(
    ctx: click.Context,
    data_path: Path | None,
    beir_dir: Path | None,
    split: str,
    held_out: bool,
    limit: int | None,
    index_dir: Path | None,
    modes: str,
    encoder: Path | None,
    reader_dir: Path | None,
    no_reader: bool,
    runtime: str | None,
    as_json: bool,
    plot: Path | None,
) -> None:
    """Score retrieval (recall@1/5/20/100, MRR@10, nDCG@10 per mode) and, on
    SQuAD, the reader on gold passages and end to end (retrieve, then read)."""
    from rag_qa.evaluation.runner import beir_eval_set, format_table, plot_recall, run_eval, squad_eval_set

    if (data_path is None) == (beir_dir is None):
        raise RagQAError("pass exactly one of --data (SQuAD JSON) or --beir (a BEIR folder)")
    if plot:
        from rag_qa.errors import require_extra

        require_extra("plot", "matplotlib", what="--plot")
    chosen = [m.strip() for m in modes.split(",") if m.strip()]
    bad = [m for m in chosen if m not in MODES]
    if bad or not chosen:
        raise RagQAError(f"unknown mode(s) {', '.join(bad) or '(none)'}: use {', '.join(MODES)}")
    if data_path:
        eval_set = squad_eval_set(data_path, held_out=held_out, limit=limit)
    else:
        from rag_qa.data import held_out_beir_queries

        query_ids = held_out_beir_queries(beir_dir, split=split, role="test") if held_out else None
        eval_set = beir_eval_set(beir_dir, split=split, limit=limit, query_ids=query_ids)
    reader = None
    if data_path and not no_reader:
        from rag_qa.reading.reader import Reader

        reader = Reader(reader_dir, runtime=runtime or "auto")
    results = run_eval(
        eval_set,
        index_dir=index_dir,
        modes=chosen,
        reader=reader,
        encoder=encoder,
        show_progress=not ctx.obj["quiet"] and not as_json,
    )
    if plot:
        plot_recall(results, plot)
    click.echo(json.dumps(results, indent=2) if as_json else format_table(results))


@cli.command("tune-fusion")
@click.option(
    "--data",
    "data_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQuAD JSON (.json or .json.gz): the tuning half of its held-out questions is used.",
)
@click.option(
    "--beir",
    "beir_dirs",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="BEIR folder: the tuning half of its held-out queries is used (repeatable).",
)
@click.option("--split", default="train", show_default=True, help="BEIR qrels split the held-out queries come from.")
@click.option("--limit", type=int, help="At most N questions per data set (a seeded sample).")
@click.option("--encoder", type=click.Path(path_type=Path), help="Encoder directory (default: the bundled one).")
@click.option("--json", "as_json", is_flag=True, help="Print the full report, grid included, as JSON.")
@click.pass_context
def tune_fusion_cmd(
    ctx: click.Context,
    data_path: Path | None,
    beir_dirs: tuple[Path, ...],
    split: str,
    limit: int | None,
    encoder: Path | None,
    as_json: bool,
) -> None:
    """Choose the hybrid fusion (RRF k and weights, or weighted scores) on
    held-out questions: half of them choose, the other half report. Put the
    result in the `fusion:` block of an index config (configs/index.yaml)."""
    import tempfile

    from rag_qa.data import held_out_beir_queries
    from rag_qa.evaluation.runner import beir_eval_set, ensure_index, squad_eval_set
    from rag_qa.evaluation.tune_fusion import collect, format_report, tune

    if not data_path and not beir_dirs:
        raise RagQAError("pass --data (SQuAD JSON) and/or --beir (BEIR folders) to tune on")
    sets = []
    if data_path:
        sets.append(squad_eval_set(data_path, held_out=True, limit=limit, role="tune"))
    for folder in beir_dirs:
        sets.append(
            beir_eval_set(
                folder, split=split, limit=limit, query_ids=held_out_beir_queries(folder, split=split, role="tune")
            )
        )
    datasets = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n, eval_set in enumerate(sets):
            index = ensure_index(
                eval_set, Path(tmp) / f"index{n}", encoder, show_progress=not ctx.obj["quiet"] and not as_json
            )
            docs = [str(p.metadata.get("id")) for p in index.passages]
            datasets[eval_set.name] = (collect(index, eval_set.queries, eval_set.qrels), docs)
    report = tune(datasets)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))


@cli.command("tune-reader")
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQuAD JSON: questions are drawn from the tuning half of its held-out articles' questions (the split "
    "train-reader holds out).",
)
@click.option(
    "--reader",
    "reader_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Reader directory to tune; the settings are written into it.",
)
@click.option(
    "--questions",
    type=int,
    default=400,
    show_default=True,
    help="Questions from the tuning half (half of them to fit, half to report).",
)
@click.option("-k", "--top-k", "k", type=int, default=10, show_default=True, help="Passages retrieved per question.")
@runtime_option
@click.pass_context
def tune_reader_cmd(
    ctx: click.Context, data_path: Path, reader_dir: Path, questions: int, k: int, runtime: str | None
) -> None:
    """Fit the answer confidence (temperature), the retriever/reader score
    mix and the no-answer threshold on held-out questions, and save them as
    ragqa_reader.json in the reader directory (with calibration.json)."""
    from rag_qa.evaluation.tune_reader import save_settings, tune
    from rag_qa.reading.reader import Reader, ReaderConfig

    report = tune(
        Reader(reader_dir, config=ReaderConfig(runtime=runtime or "auto")),
        data_path,
        questions=questions,
        k=k,
        show_progress=not ctx.obj["quiet"],
    )
    save_settings(reader_dir, report)
    click.echo(
        f"Tuned {reader_dir}: retriever weight {report['retriever_weight']}, temperature {report['temperature']:.2f}, "
        f"no-answer threshold {report['no_answer_threshold']:.2f}; on {report['questions']['test']} test questions: "
        f"EM {report['test_em_top1']:.1f} (reader alone {report['test_em_reader_only']:.1f}), "
        f"ECE {report['test_ece_before']:.3f} -> {report['test_ece_after']:.3f} "
        f"(95% interval {report['test_ece_after_95'][0]:.3f}-{report['test_ece_after_95'][1]:.3f})"
    )


def training_options(kind: str, base_help: str):
    """``--base``, ``--out`` and ``--config``, shared by the training commands."""

    def decorate(command):
        for option in reversed(
            [
                click.option(
                    "--base",
                    type=click.Path(file_okay=False, path_type=Path),
                    help=f"{base_help} (default: the bundled MiniLM).",
                ),
                click.option(
                    "--out",
                    "out_dir",
                    type=click.Path(file_okay=False, path_type=Path),
                    default=Path(f"models/{kind}"),
                    show_default=True,
                    help=f"Where the trained {kind} is saved.",
                ),
                click.option(
                    "--config",
                    "config_path",
                    type=click.Path(dir_okay=False, path_type=Path),
                    help=f"YAML settings (see configs/train_{kind}.yaml).",
                ),
            ]
        ):
            command = option(command)
        return command

    return decorate


@cli.command("train-encoder")
@click.option(
    "--train",
    "train_source",
    required=True,
    type=click.Path(path_type=Path),
    help="SQuAD JSON(.gz), a JSONL of {query, positive, negative}, or a BEIR folder.",
)
@training_options("encoder", "Local sentence-transformers directory to start from")
@click.option("--max-train-pairs", type=int, help="Train on a random subset of this many pairs.")
@click.option("--epochs", type=float, help="Passes over the training pairs.")
@click.pass_context
def train_encoder_cmd(
    ctx: click.Context,
    train_source: Path,
    base: Path | None,
    out_dir: Path,
    config_path: Path | None,
    max_train_pairs: int | None,
    epochs: float | None,
) -> None:
    """Fine-tune the dense encoder on (question, passage) pairs.

    Uses in-batch negatives plus BM25-mined hard negatives
    (MultipleNegativesRankingLoss), scores nDCG@10 on held-out queries as it
    trains and keeps the best checkpoint. Index with the result:
    `ragqa index docs/ --encoder OUT`.
    """
    from rag_qa.training.encoder import EncoderTrainConfig, train_encoder

    if not train_source.exists():
        raise RagQAError(f"training data {train_source} does not exist")
    config = EncoderTrainConfig.from_yaml(config_path) if config_path else EncoderTrainConfig()
    overrides = {
        k: v
        for k, v in {"base": str(base) if base else None, "max_train_pairs": max_train_pairs, "epochs": epochs}.items()
        if v is not None
    }
    config = config.replace(**overrides)
    logging.getLogger("rag_qa").setLevel(logging.INFO if not ctx.obj["quiet"] else logging.ERROR)
    results = train_encoder(train_source, out_dir, config, show_progress=not ctx.obj["quiet"])
    key = "heldout_cosine_ndcg@10"
    if results["after"]:
        click.echo(
            f"Encoder saved to {out_dir}: held-out nDCG@10 {results['before'][key]:.4f} -> {results['after'][key]:.4f} "
            f"on {results['eval_queries']} queries ({results['steps']} steps)"
        )
    else:
        click.echo(f"Encoder saved to {out_dir} ({results['steps']} steps; no held-out queries to score)")


@cli.command("train-reader")
@click.option(
    "--train",
    "train_path",
    required=True,
    type=click.Path(path_type=Path),
    help="SQuAD v1.1/v2.0 JSON (.json or .json.gz), or a folder of them (such as `ragqa serve`'s feedback folder).",
)
@click.option(
    "--eval",
    "eval_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQuAD JSON to evaluate on (default: articles held out of --train).",
)
@training_options("reader", "Local model directory to start from")
@click.option("--max-steps", type=int, help="Stop after this many optimizer steps.")
@click.option("--max-train-examples", type=int, help="Train on a random subset of this many questions.")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in OUT/checkpoints.")
@click.pass_context
def train_reader_cmd(
    ctx: click.Context,
    train_path: Path,
    eval_path: Path | None,
    base: Path | None,
    out_dir: Path,
    config_path: Path | None,
    max_steps: int | None,
    max_train_examples: int | None,
    resume: bool,
) -> None:
    """Fine-tune an extractive reader on SQuAD-format questions.

    Evaluates SQuAD exact match and F1 on held-out questions as it trains,
    stops early when F1 stops improving, keeps the best checkpoint, and saves
    a plain transformers model directory with eval_results.json and a model
    card to OUT.

    SIGTERM or Ctrl-C saves a checkpoint after the current step and stops;
    --resume continues the same run. `negatives_per_question` in the config
    adds answerless paragraphs (see configs/train_reader.yaml).
    """
    from rag_qa.training.reader import ReaderTrainConfig, train_reader

    config = ReaderTrainConfig.from_yaml(config_path) if config_path else ReaderTrainConfig()
    overrides = {
        k: v
        for k, v in {
            "base": str(base) if base else None,
            "max_steps": max_steps,
            "max_train_examples": max_train_examples,
        }.items()
        if v is not None
    }
    config = config.replace(**overrides)
    logging.getLogger("rag_qa").setLevel(logging.INFO if not ctx.obj["quiet"] else logging.ERROR)
    results = train_reader(
        train_path, out_dir, config, eval_path=eval_path, resume=resume, show_progress=not ctx.obj["quiet"]
    )
    if results.get("interrupted"):  # the group prints it as one line and exits 1
        raise RagQAError(
            f"Training stopped at step {results['steps']:,}: a resumable checkpoint is in "
            f"{results['checkpoints']}; run the same command with --resume to continue."
        )
    click.echo(
        f"Reader saved to {out_dir}: EM {results['exact_match']:.2f}, F1 {results['f1']:.2f} on "
        f"{results['eval_questions']:,} held-out questions ({results['steps']:,} steps)"
    )


@cli.command("serve")
@index_dir_option
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind; another than loopback needs an API key."
)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port to listen on.")
@click.option(
    "--api-key-env",
    default="RAGQA_API_KEY",
    show_default=True,
    help="Environment variable holding the API key; when it is set, every request needs 'Authorization: Bearer KEY'.",
)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes.")
@click.option(
    "--feedback-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("feedback"),
    show_default=True,
    help="Folder for corrected answers (SQuAD JSON, one file a day; `ragqa train-reader --train` reads it).",
)
@click.option("--cors-origin", "cors_origins", multiple=True, help="Allow browser pages from this origin (repeatable).")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Most questions per reader pass (1: no batching).",
)
@click.option(
    "--batch-wait-ms",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="How long a question waits for others to share its pass.",
)
@click.option(
    "--queue-size",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Questions that may wait; beyond it: 503 with Retry-After.",
)
@click.option(
    "--reader",
    "reader_dir",
    type=click.Path(path_type=Path),
    help="Reader model directory (default: the shipped reader).",
)
@runtime_option
def serve_cmd(
    index_dir: Path,
    host: str,
    port: int,
    api_key_env: str,
    workers: int,
    feedback_dir: Path,
    cors_origins: tuple[str, ...],
    batch_size: int,
    batch_wait_ms: float,
    queue_size: int,
    reader_dir: Path | None,
    runtime: str | None,
) -> None:
    """Serve the index over HTTP: POST /ask, /search, /feedback; GET /info, /health; API docs at /docs.

    Binds 127.0.0.1 unless --host says otherwise; another address needs an
    API key in the variable --api-key-env names. Needs the serve extra
    (pip install 'ragqa[serve]'). SIGTERM or Ctrl-C finishes the requests in
    flight, then stops. Without --runtime, the reader runs torch on a CPU with
    bfloat16 in hardware (faster once warm, slower to start), else as `ragqa ask`.
    """
    import dataclasses
    import ipaddress
    import shutil
    import tempfile

    from rag_qa.errors import InputError, require_extra

    require_extra("serve", "fastapi", "uvicorn", what="ragqa serve")
    import uvicorn

    from rag_qa.service.app import CONFIG_ENV, ServeConfig, config_json, create_app

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not os.environ.get(api_key_env):
        raise InputError(
            f"refusing to bind {host} without an API key: set {api_key_env} (export {api_key_env}=...) "
            "or bind 127.0.0.1"
        )
    config = ServeConfig(
        index_dir=str(index_dir),
        reader=str(reader_dir) if reader_dir else None,
        runtime=runtime,
        api_key_env=api_key_env,
        feedback_dir=str(feedback_dir),
        batch_size=batch_size,
        batch_wait_ms=batch_wait_ms,
        queue_size=queue_size,
        cors_origins=cors_origins,
        workers=workers,
    )
    create_app(config)  # a missing or broken index fails here, in one line, before any worker starts
    ready_dir = tempfile.mkdtemp(prefix="ragqa-serve-ready-") if workers > 1 else None
    os.environ[CONFIG_ENV] = config_json(dataclasses.replace(config, ready_dir=ready_dir))
    click.echo(f"ragqa serving {index_dir} on http://{host}:{port} (API docs at /docs)", err=True)
    try:
        uvicorn.run(
            "rag_qa.service.app:app_from_env", factory=True, host=host, port=port, workers=workers, log_level="info"
        )
    finally:
        if ready_dir is not None:
            shutil.rmtree(ready_dir, ignore_errors=True)


def _set_verbosity(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        obj = ctx.find_root().ensure_object(dict)
        obj[param.name] = True
        _setup_logging(obj.get("quiet", False), obj.get("verbose", False))


# -q/-v are accepted after the command too (`ragqa index docs/ -q`), as users type them.
for _command in cli.commands.values():
    _command.params += [
        click.Option(
            ["-q", "--quiet"],
            is_flag=True,
            expose_value=False,
            callback=_set_verbosity,
            help="No progress bars or warnings, only results and errors.",
        ),
        click.Option(
            ["-v", "--verbose"],
            is_flag=True,
            expose_value=False,
            callback=_set_verbosity,
            help="Log what happens underneath.",
        ),
    ]


def main() -> None:
    cli(obj={})


if __name__ == "__main__":  # pragma: no cover
    main()
