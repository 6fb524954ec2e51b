"""The Milvus backend: passages, BM25 and vectors in a Milvus collection.

::

    index/
      manifest.json     backend "milvus"; the URI (never a secret), the alias and the
                        collection it points at, the encoder, counts, checksums
      gen-<id>/         documents.json, source_files.json: what the next build compares with
      milvus.db/        the Milvus Lite data, when the URI is the default local file

One collection per build, ``<alias>__<generation id>``: the passage text as
ragqa scores it (title and section lines, then the text) in an analyzed
field from which Milvus's BM25 function makes the sparse vector; the text,
source, offsets, line, page and metadata; the key (content hash) that later
builds reuse vectors by; and the dense vector (HNSW, IVF or flat, inner
product). A build fills and loads the new collection, then moves the alias
onto it and swaps the manifest: readers search through the alias, so they see
the old collection or the new one, never a half-written one, and a build that
fails or is killed leaves the old one serving. The collection before the live
one is kept (a process that loaded it goes on answering); older ones are
dropped.

pymilvus (and milvus-lite for a local file) are imported only here, and this
module only when an index's backend is Milvus (``pip install 'ragqa[milvus]'``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import math
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from rag_qa.choices import MODES
from rag_qa.config import IndexConfig
from rag_qa.errors import (
    IndexCorruptError,
    IndexLockedError,
    IndexMismatchError,
    IndexMissingError,
    InputError,
    require_extra,
)
from rag_qa.retrieval import storage
from rag_qa.retrieval.hybrid import rank_fused, reciprocal_rank_fusion, weighted_fusion
from rag_qa.text import check_query
from rag_qa.types import Passage, ScoredPassage

logger = logging.getLogger(__name__)

# The collection layout this ragqa writes and reads (stored as the collection's ``ragqa.schema`` property).
SCHEMA = 1
LITE_FILE = storage.MILVUS_LITE_FILE  # the default Milvus Lite data folder, inside the index folder
MAX_VARCHAR = 65_535  # bytes: Milvus's longest VARCHAR
INSERT_BATCH = 256
READ_BATCH = 1000
PASSAGE_FIELDS = ["row", "passage_id", "doc_id", "source", "title", "start", "end", "text", "metadata"]
START_HINT = (
    "start a Milvus server (`docker compose up -d` with Milvus's standalone docker-compose.yml, or its Helm chart "
    "on Kubernetes) or pass --milvus-uri with a local .db file for Milvus Lite"
)


# ------------------------------------------------------------------ connecting
def _pymilvus():
    require_extra("milvus", "pymilvus", what="the Milvus backend")
    # gRPC's core logs to stderr (each fork of a file parser, keep-alive notices) unless told otherwise
    # before it loads; failures reach ragqa as exceptions.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    import pymilvus

    # pymilvus logs every failed call with a traceback through a handler of its own;
    # ragqa reports each failure as one line instead.
    for name in ("pymilvus", "pymilvus.milvus_client", "milvus_lite", "grpc._server"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return pymilvus


def is_local(uri: str) -> bool:
    """True for a Milvus Lite file (a path), False for a server (``http://host:19530``)."""
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", uri) is None


def stored_uri(uri: str | None, directory: Path) -> str:
    """What the manifest records: a server URI as given (without credentials), or
    a Milvus Lite file relative to the index folder when inside it, else absolute."""
    if uri is None:
        return LITE_FILE
    if not is_local(uri):
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/]*@", uri):
            raise InputError(
                f"the Milvus URI {_redact(uri)} holds credentials, which the manifest would record: pass the URI "
                "without them and the token with --milvus-token-env VAR (VAR holding user:password or an API key)"
            )
        return uri.rstrip("/")
    path = Path(uri)
    if path.suffix != ".db":
        raise InputError(f"a Milvus Lite file must end in .db, got {uri!r}: e.g. --milvus-uri ./index/milvus.db")
    path = path.resolve()
    try:
        return path.relative_to(directory.resolve()).as_posix()
    except ValueError:
        return str(path)


def actual_uri(uri: str, directory: Path) -> str:
    """The URI to connect to, from the one the manifest records."""
    if not is_local(uri) or Path(uri).is_absolute():
        return uri
    return str(directory / uri)


def _redact(uri: str) -> str:
    return re.sub(r"(://)[^/@]*@", r"\1***@", uri)


def default_alias(directory: Path) -> str:
    """``ragqa_<folder name>_<hash of its path>``: one alias per index folder, also on a shared server."""
    resolved = str(directory.resolve())
    name = re.sub(r"[^A-Za-z0-9_]", "_", directory.resolve().name)[:40] or "index"
    return f"ragqa_{name}_{hashlib.sha1(resolved.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def connect(settings: Mapping[str, Any], directory: Path):
    """A ``MilvusClient`` for the index's URI, the token read from ``token_env``."""
    pymilvus = _pymilvus()
    uri = actual_uri(settings.get("uri") or LITE_FILE, directory)
    token_env = settings.get("token_env")
    token = ""
    if token_env:
        token = os.environ.get(token_env, "")
        if not token:
            raise InputError(
                f"the Milvus token variable {token_env} is not set: export {token_env}=<user:password or API key>, "
                "or build without --milvus-token-env"
            )
    options: dict[str, Any] = {}
    local = is_local(uri)
    if local:
        require_extra("milvus", "milvus_lite", what="a Milvus Lite file")
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        # pymilvus pings every 10 s even when idle, which Milvus Lite's gRPC server answers by closing
        # the connection (GOAWAY "too_many_pings") while a build embeds: ping only during calls.
        options = {"grpc_options": {"grpc.keepalive_permit_without_calls": 0, "grpc.keepalive_time_ms": 300_000}}
    for attempt in range(3 if local else 1):
        try:
            return pymilvus.MilvusClient(
                uri=uri, token=token, timeout=float(settings.get("timeout") or 30.0), **options
            )
        except pymilvus.MilvusException as exc:
            if attempt == (2 if local else 0) or getattr(exc, "code", None) != 2:
                raise describe_error(exc, uri, token_env) from None
            time.sleep(0.5 * (attempt + 1))  # a Lite server of this process whose old connection is closing
    raise AssertionError("unreachable")  # pragma: no cover


def describe_error(exc: Exception, uri: str, token_env: str | None = None, collection: str | None = None) -> Exception:
    """A pymilvus failure as the one-line ragqa error a user can act on."""
    message = str(getattr(exc, "message", "") or exc).replace("\n", " ")
    code = getattr(exc, "code", None)
    lowered = message.lower()
    shown = _redact(uri)
    if any(word in lowered for word in ("auth", "credential", "password", "token", "permission denied", "unauthenti")):
        where = f"the token in {token_env}" if token_env else "no token"
        return InputError(
            f"Milvus at {shown} refused {where} ({message}): set the right user:password or API key"
            + (f" in {token_env}" if token_env else " in a variable and pass --milvus-token-env VAR")
        )
    if is_local(uri) and "open local milvus failed" in lowered:
        return IndexLockedError(
            f"the Milvus Lite file {uri} is open in another process (Milvus Lite serves one process at a time): "
            "wait for that process (e.g. a `ragqa index`) to finish, or run a Milvus server to share an index"
        )
    if code == 2 or "fail connecting" in lowered or "unavailable" in lowered or "deadline" in lowered:
        if is_local(uri):
            return IndexMissingError(
                f"Milvus Lite could not open {uri} ({message}): Milvus Lite serves one process at a time, so stop the "
                "other process using it, or run a Milvus server for several"
            )
        return IndexMissingError(f"Milvus is not reachable at {shown} ({message}): {START_HINT}")
    if collection is not None and ("not exist" in lowered or "not found" in lowered):
        return IndexMissingError(f"the Milvus collection {collection} is missing at {shown}")
    return IndexCorruptError(f"Milvus at {shown} failed ({type(exc).__name__}: {message})")


class _Calls:
    """Runs client calls, turning pymilvus failures into ragqa errors."""

    def __init__(self, client, uri: str, token_env: str | None):
        self.client, self.uri, self.token_env = client, uri, token_env
        self._error = _pymilvus().MilvusException

    def __call__(self, method: str, *args: Any, collection: str | None = None, **kwargs: Any):
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except self._error as exc:
            raise describe_error(exc, self.uri, self.token_env, collection) from None


def check_server(settings: Mapping[str, Any], directory: Path) -> None:
    """Fail now, before documents are read and embedded, when Milvus cannot be reached
    or the alias is taken by a collection of that name."""
    uri = actual_uri(settings.get("uri") or LITE_FILE, directory)
    client = connect(settings, directory)
    try:
        calls = _Calls(client, uri, settings.get("token_env"))
        alias = settings.get("collection") or settings.get("alias")
        if alias and calls("has_collection", alias) and _alias_target(calls, alias) is None:
            raise InputError(
                f"Milvus at {_redact(uri)} has a collection named {alias}, which this index would use as its "
                "alias: choose another name with --milvus-collection"
            )
    finally:
        client.close()  # not held open while the documents are read and embedded


def _alias_target(calls: _Calls, alias: str) -> str | None:
    """The collection ``alias`` points at, None when there is no such alias."""
    if alias not in (calls("list_aliases").get("aliases") or []):
        return None
    return calls("describe_alias", alias).get("collection_name")


# -------------------------------------------------------------------- writing
def analyzer_params(config: IndexConfig) -> dict[str, Any]:
    """Milvus's standard tokenizer (Unicode words, lower-cased) with ragqa's stopwords."""
    params: dict[str, Any] = {"tokenizer": "standard", "filter": ["lowercase"]}
    if config.bm25.stopwords == "en":
        from bm25s.stopwords import STOPWORDS_EN

        params["filter"].append({"type": "stop", "stop_words": sorted(STOPWORDS_EN)})
    return params


def _create_collection(calls: _Calls, name: str, dimension: int, config: IndexConfig, max_bytes: int) -> None:
    pymilvus = _pymilvus()
    DataType = pymilvus.DataType
    text_len = max(1, min(MAX_VARCHAR, max_bytes))
    schema = calls.client.create_schema(auto_id=False, enable_dynamic_field=False, description="ragqa index")
    schema.add_field("row", DataType.INT64, is_primary=True)
    schema.add_field("passage_id", DataType.VARCHAR, max_length=MAX_VARCHAR)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=MAX_VARCHAR)
    schema.add_field("source", DataType.VARCHAR, max_length=MAX_VARCHAR)
    schema.add_field("title", DataType.VARCHAR, max_length=MAX_VARCHAR)
    schema.add_field("start", DataType.INT64)
    schema.add_field("end", DataType.INT64)
    schema.add_field("line", DataType.INT64)  # -1: not known
    schema.add_field("page", DataType.INT64)  # -1: not a PDF
    schema.add_field("key", DataType.VARCHAR, max_length=64)
    schema.add_field("text", DataType.VARCHAR, max_length=text_len)
    schema.add_field(
        "scored_text",
        DataType.VARCHAR,
        max_length=text_len,
        enable_analyzer=True,
        analyzer_params=analyzer_params(config),
    )
    schema.add_field("metadata", DataType.JSON)
    schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dimension)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(
        pymilvus.Function(
            name="bm25",
            function_type=pymilvus.FunctionType.BM25,
            input_field_names=["scored_text"],
            output_field_names=["sparse"],
        )
    )
    milvus = config.milvus
    index_params = calls.client.prepare_index_params()
    dense_params = (
        {"M": milvus.hnsw_m, "efConstruction": milvus.hnsw_ef_construction}
        if milvus.index_type == "HNSW"
        else {"nlist": milvus.ivf_nlist}
        if milvus.index_type == "IVF_FLAT"
        else {}
    )
    index_params.add_index("dense", index_type=milvus.index_type, metric_type="IP", params=dense_params)
    index_params.add_index(
        "sparse",
        index_type="SPARSE_INVERTED_INDEX",
        metric_type="BM25",
        params={"bm25_k1": config.bm25.k1, "bm25_b": config.bm25.b},
    )
    calls("create_collection", name, schema=schema)
    # Not waited for here (Milvus Lite cannot be asked for a build timestamp); loading waits for the indexes.
    calls("create_index", name, index_params, sync=False, collection=name)


def _row(i: int, p: Passage, scored: str, key: str, vector: np.ndarray) -> dict[str, Any]:
    line, page = p.metadata.get("line"), p.metadata.get("page")
    return {
        "row": i,
        "passage_id": p.passage_id,
        "doc_id": p.doc_id,
        "source": p.source,
        "title": p.title,
        "start": p.start,
        "end": p.end,
        "line": line if isinstance(line, int) and not isinstance(line, bool) else -1,
        "page": page if isinstance(page, int) and not isinstance(page, bool) else -1,
        "key": key,
        "text": p.text,
        "scored_text": scored,
        "metadata": dict(p.metadata),
        "dense": vector.tolist(),
    }


def _check_sizes(passages: Sequence[Passage], texts: Sequence[str]) -> int:
    """The longest text in UTF-8 bytes; a passage past Milvus's longest VARCHAR is refused in one line."""
    longest = 0
    for p, text in zip(passages, texts):
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_VARCHAR:
            raise InputError(
                f"a passage of {p.source} holds {size} bytes, more than a Milvus text field holds ({MAX_VARCHAR}): "
                "index with a smaller chunking.size (--config) or use the built-in backend"
            )
        longest = max(longest, size)
    for name in ("passage_id", "doc_id", "source", "title"):
        for p in passages:
            if len(getattr(p, name).encode("utf-8", "surrogatepass")) > MAX_VARCHAR:
                raise InputError(f"the {name} of a passage of {p.source[:200]} is longer than Milvus holds")
    return longest


def write_generation(
    directory: Path,
    passages: Sequence[Passage],
    texts: Sequence[str],
    keys: Sequence[str],
    vectors: np.ndarray,
    local_files: Mapping[str, str],
    manifest: dict[str, Any],
    config: IndexConfig,
    previous: str | None,
    show_progress: bool,
) -> str:
    """Fill a new collection, swap the manifest onto it and move the alias; returns the generation's name.

    ``local_files`` (name: text) go into the generation folder beside the
    manifest; ``previous`` is the collection the live manifest names, kept
    for processes that loaded it. On any failure (or a kill) before the
    manifest swap, the manifest and the alias still name the old collection;
    after it, ragqa reads the new one and the next build moves the alias.
    """
    from tqdm.auto import tqdm

    from rag_qa import __version__

    settings = manifest["milvus"]
    alias = settings["alias"]
    uri = actual_uri(settings["uri"], directory)
    calls = _Calls(connect(settings, directory), uri, settings.get("token_env"))
    longest = _check_sizes(passages, texts)
    if calls("has_collection", alias) and _alias_target(calls, alias) is None:
        raise InputError(
            f"Milvus at {_redact(uri)} has a collection named {alias}, which this index would use as its alias: "
            "choose another name with --milvus-collection"
        )
    tmp, gen_name = storage.new_generation(directory)
    collection = f"{alias}__{gen_name.removeprefix('gen-')}"
    created = committed = False
    try:
        _create_collection(calls, collection, int(vectors.shape[1]), config, longest)
        created = True
        rows = range(len(passages))
        with tqdm(total=len(passages), desc="Writing to Milvus", unit="passage", disable=not show_progress) as bar:
            for start in range(0, len(passages), INSERT_BATCH):
                batch = rows[start : start + INSERT_BATCH]
                calls(
                    "insert",
                    collection,
                    [_row(i, passages[i], texts[i], keys[i], vectors[i]) for i in batch],
                    collection=collection,
                )
                bar.update(len(batch))
        calls("flush", collection, collection=collection)
        calls(
            "alter_collection_properties",
            collection,
            properties={
                "ragqa.schema": str(SCHEMA),
                "ragqa.version": __version__,
                "ragqa.encoder_sha256": manifest["encoder"]["sha256"],
                "ragqa.passages": str(len(passages)),
            },
            collection=collection,
        )
        calls("load_collection", collection, collection=collection)
        for name, text in local_files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        manifest = {**manifest, "milvus": {**settings, "collection": collection}, "files": storage.checksums(tmp)}
        # The switch is the manifest's (one rename): ragqa reads the collection the manifest names.
        # The alias, for other programs that search the index, follows it.
        storage.commit(directory, tmp, gen_name, manifest)
        committed = True
        try:
            if _alias_target(calls, alias) is None:
                calls("create_alias", collection, alias, collection=collection)
            else:
                calls("alter_alias", collection, alias, collection=collection)
        except Exception as exc:  # noqa: BLE001 - the index is updated; only the alias lags
            logger.warning(
                "the index now reads %s, but the Milvus alias %s could not be moved onto it (%s): "
                "the next `ragqa index` moves it",
                collection,
                alias,
                exc,
            )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created and not committed:
            try:
                calls("drop_collection", collection)
            except Exception:  # noqa: BLE001 - the next build drops it
                logger.warning("the unfinished Milvus collection %s was left; the next build drops it", collection)
        raise
    drop_stale(calls, alias, keep={collection, previous})
    return gen_name


def align_alias(directory: Path, manifest: Mapping[str, Any]) -> None:
    """Point the alias at the collection the manifest names, when a build stopped between the two."""
    settings = manifest.get("milvus") or {}
    alias, collection = settings.get("alias"), settings.get("collection")
    if not alias or not collection:
        return
    uri = actual_uri(settings.get("uri") or LITE_FILE, directory)
    client = connect(settings, directory)
    try:
        calls = _Calls(client, uri, settings.get("token_env"))
        target = _alias_target(calls, alias)
        if target == collection or not calls("has_collection", collection):
            return
        if target is None:
            calls("create_alias", collection, alias, collection=collection)
        else:
            calls("alter_alias", collection, alias, collection=collection)
        logger.info("moved the Milvus alias %s onto %s, the collection the index names", alias, collection)
    finally:
        client.close()


def drop_stale(calls: _Calls, alias: str, keep: set[str | None]) -> None:
    """Drop this index's collections but ``keep`` (and whatever the alias points at): unfinished or superseded ones."""
    keep = keep | {_alias_target(calls, alias)}
    for name in calls("list_collections"):
        if name.startswith(f"{alias}__") and name not in keep:
            try:
                calls("drop_collection", name)
            except Exception as exc:  # noqa: BLE001 - a later build tries again
                logger.warning("could not drop the old Milvus collection %s: %s", name, exc)


def previous_rows(directory: Path, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """What a build reuses from the live collection: passages by document, and
    each passage's key and vector. None when the collection is gone."""
    settings = manifest.get("milvus") or {}
    collection = settings.get("collection")
    if not collection:
        return None
    uri = actual_uri(settings.get("uri") or LITE_FILE, directory)
    client = connect(settings, directory)
    calls = _Calls(client, uri, settings.get("token_env"))
    by_doc: dict[str, list[Passage]] = {}
    keys: list[str] = []
    vectors: list[list[float]] = []
    try:
        if not calls("has_collection", collection):
            logger.warning("the Milvus collection %s of the index is gone; every passage is embedded again", collection)
            return None
        calls("load_collection", collection, collection=collection)
        for row in _read_all(calls, collection, [*PASSAGE_FIELDS, "key", "dense"]):
            passage = _passage(row)
            by_doc.setdefault(passage.doc_id, []).append(passage)
            keys.append(row["key"])
            vectors.append(row["dense"])
    finally:
        client.close()  # not held open while the documents are read and embedded
    array = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
    return {"passages": by_doc, "keys": keys, "vectors": array}


def _read_all(calls: _Calls, collection: str, fields: list[str]) -> Iterable[dict[str, Any]]:
    """Every row, in row order, in slices of :data:`READ_BATCH` rows."""
    start = 0
    while True:
        rows = calls(
            "query",
            collection,
            filter=f"row >= {start} and row < {start + READ_BATCH}",
            output_fields=fields,
            collection=collection,
        )
        if not rows:
            return
        yield from sorted(rows, key=lambda r: r["row"])
        start += READ_BATCH


def _passage(row: Mapping[str, Any]) -> Passage:
    metadata = row.get("metadata") or {}
    if isinstance(metadata, str):
        metadata = json.loads(metadata)
    return Passage(
        passage_id=row["passage_id"],
        doc_id=row["doc_id"],
        source=row["source"],
        text=row["text"],
        start=int(row["start"]),
        end=int(row["end"]),
        title=row.get("title") or "",
        metadata=metadata,
    )


# ------------------------------------------------------------------- filters
_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        # Milvus's string escapes are \\ \" \' \n \r \t (no \u): other characters, control ones
        # included, stand as they are
        return '"' + value.translate(_ESCAPES) + '"'
    raise InputError(f"a metadata filter value must be a string, number or true/false, got {value!r}")


def source_filter(glob: str, sources: Iterable[str]) -> str | None:
    """``source`` matching the glob as a Milvus expression; None when no source matches.

    A glob of ``*`` and ``?`` over plain characters becomes ``source like``;
    any other (character classes, ``%`` or ``_`` in names) becomes ``source
    in [...]`` over the indexed sources it matches, so both mean what
    :func:`fnmatch.fnmatchcase` means, as for the built-in backend.
    """
    if not re.search(r"[%_\\\[\]\"\n]", glob):
        return f"source like {_literal(glob.replace('*', '%').replace('?', '_'))}"
    matched = sorted({s for s in sources if fnmatch.fnmatchcase(s, glob)})
    if not matched:
        return None
    return f"source in [{', '.join(_literal(s) for s in matched)}]"


def where_filter(where: Mapping[str, Any]) -> str:
    """``metadata["key"] == value and ...`` for each key of ``where``."""
    parts = []
    for key, value in where.items():
        if not isinstance(key, str) or not key:
            raise InputError(f"a metadata filter key must be a non-empty string, got {key!r}")
        parts.append(f"metadata[{_literal(key)}] == {_literal(value)}")
    return " and ".join(parts)


# ------------------------------------------------------------------- reading
class MilvusIndex:
    """An index whose passages, BM25 and vectors are in Milvus: the same
    :meth:`search` as the built-in :class:`~rag_qa.retrieval.index.Index`."""

    backend = "milvus"

    def __init__(self, directory: Path, manifest: dict[str, Any], calls: _Calls, collection: str, encoder_path=None):
        self.directory = directory
        self.manifest = manifest
        self.config = IndexConfig.from_dict(manifest["config"])
        self.collection = collection  # what the alias pointed at when loaded
        self._calls = calls
        self._encoder_path = encoder_path
        self._encoder = None
        self._passages: list[Passage] | None = None
        self._by_id: dict[str, Passage] | None = None
        self._sources: list[str] | None = None

    @classmethod
    def open(
        cls,
        directory: Path,
        manifest: dict[str, Any],
        encoder: str | Path | None = None,
        verify: bool = True,
        runtime: str | None = None,
    ) -> "MilvusIndex":
        from rag_qa import __version__

        settings = manifest.get("milvus")
        if not isinstance(settings, dict) or not settings.get("alias"):
            raise IndexCorruptError(
                f"{directory / storage.MANIFEST} names no Milvus collection; {storage.rebuild_hint(directory)}"
            )
        if verify:
            storage.verify(directory, manifest, full=False)
        uri = actual_uri(settings.get("uri") or LITE_FILE, directory)
        calls = _Calls(connect(settings, directory), uri, settings.get("token_env"))
        alias = settings["alias"]
        # the collection the manifest names, not the alias's: a build killed between swapping the
        # manifest and moving the alias leaves the alias behind, never the manifest
        collection = settings.get("collection") or _alias_target(calls, alias)
        if collection is None or not calls("has_collection", collection):
            raise IndexMissingError(
                f"the Milvus collection of the index at {directory} ({alias}) is missing at {_redact(uri)}: "
                f"{storage.rebuild_hint(directory)} --backend milvus"
            )
        properties = (calls("describe_collection", collection, collection=collection) or {}).get("properties") or {}
        schema = properties.get("ragqa.schema")
        if schema != str(SCHEMA):
            made_by = properties.get("ragqa.version")
            raise IndexMismatchError(
                f"the Milvus collection {collection} was "
                + (f"written by ragqa {made_by} (layout {schema})" if made_by else "not written by ragqa")
                + f", this ragqa {__version__} reads layout {SCHEMA}: {storage.rebuild_hint(directory)}"
            )
        if properties.get("ragqa.encoder_sha256") != manifest["encoder"]["sha256"]:
            raise IndexMismatchError(
                f"the Milvus collection {collection} ({alias}) holds vectors of another encoder than the index at "
                f"{directory} records (another build moved the alias): {storage.rebuild_hint(directory)}"
            )
        calls("load_collection", collection, collection=collection)
        index = cls(directory, manifest, calls, collection, encoder_path=encoder)
        if runtime is not None:
            index.config = index.config.replace(dense={"runtime": runtime})
        return index

    def close(self) -> None:
        """Nothing to release: the collection stays on the server."""

    def __enter__(self) -> "MilvusIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --------------------------------------------------------------- passages
    def __len__(self) -> int:
        return int(self.manifest["counts"]["passages"])

    @property
    def passages(self) -> list[Passage]:
        """Every passage, in row order (read from Milvus on first use)."""
        if self._passages is None:
            self._passages = [_passage(r) for r in _read_all(self._calls, self.collection, PASSAGE_FIELDS)]
        return self._passages

    def passage(self, passage_id: str) -> Passage | None:
        """The passage with ``passage_id``, or None."""
        if self._by_id is None:
            self._by_id = {p.passage_id: p for p in self.passages}
        return self._by_id.get(passage_id)

    def verify(self) -> int:
        """Read every file of the index folder against the manifest's sha256 (the collection is Milvus's to keep)."""
        return storage.verify(self.directory, self.manifest, full=True)

    def _indexed_sources(self) -> list[str]:
        if self._sources is None:
            try:
                documents = json.loads(
                    (storage.data_dir(self.directory, self.manifest) / "documents.json").read_text(encoding="utf-8")
                )
                self._sources = sorted({d["source"] for d in documents.values()})
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                self._sources = sorted({p.source for p in self.passages})
        return self._sources

    # ---------------------------------------------------------------- encoder
    @property
    def encoder(self):
        if self._encoder is None:
            from rag_qa.retrieval.index import load_query_encoder

            self._encoder = load_query_encoder(self.directory, self.manifest, self.config, self._encoder_path)
        return self._encoder

    def warm_up(self) -> "MilvusIndex":
        """Load the query encoder now rather than on the first search."""
        self.encoder.warm_up()
        return self

    # ----------------------------------------------------------------- search
    def search(
        self,
        query: str,
        k: int = 10,
        mode: str = "hybrid",
        source: str | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[ScoredPassage]:
        """The ``k`` best passages for ``query`` (see :meth:`Index.search <rag_qa.retrieval.index.Index.search>`)."""
        return self.search_batch([query], k=k, mode=mode, source=source, where=where)[0]

    def search_batch(
        self,
        queries: Sequence[str],
        k: int = 10,
        mode: str = "hybrid",
        source: str | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[list[ScoredPassage]]:
        if mode not in MODES:
            raise InputError(f"unknown search mode {mode!r}: use one of {', '.join(MODES)}")
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        queries = [check_query(q) for q in queries]
        parts = []
        if source:
            glob = source_filter(source, self._indexed_sources())
            if glob is None:
                return [[] for _ in queries]
            parts.append(glob)
        if where:
            parts.append(where_filter(where))
        expr = " and ".join(f"({p})" for p in parts)
        fusion = self.config.fusion
        depth = k if mode != "hybrid" else max(k, fusion.candidates)
        vectors = self.encoder.encode(queries).tolist() if mode != "bm25" else None
        if mode == "bm25":
            return [[_scored(h, r, bm25=True) for r, h in enumerate(hits, 1)] for hits in self._bm25(queries, k, expr)]
        if mode == "dense":
            return [
                [_scored(h, r, dense=True) for r, h in enumerate(hits, 1)] for hits in self._dense(vectors, k, expr)
            ]
        if self.config.milvus.hybrid_fusion == "ragqa" or (
            fusion.method == "rrf" and fusion.bm25_weight != fusion.dense_weight
        ):
            # Asked for, or Milvus's RRFRanker cannot do it (it weighs both lists alike): fuse here.
            return self._fuse_here(queries, vectors, k, depth, expr)
        return [
            [_scored(h, r) for r, h in enumerate(hits, 1)] for hits in self._hybrid(queries, vectors, k, depth, expr)
        ]

    def _search(self, data, field: str, limit: int, expr: str, params: dict[str, Any]) -> list[list[dict]]:
        results = self._calls(
            "search",
            self.collection,
            data=data,
            anns_field=field,
            limit=limit,
            filter=expr,
            output_fields=PASSAGE_FIELDS,
            search_params=params,
            collection=self.collection,
        )
        return [_ordered(hits, bm25=field == "sparse") for hits in results]

    def _dense_params(self, limit: int) -> dict[str, Any]:
        kind, dense = self.manifest["milvus"].get("index_type", "HNSW"), self.config.dense
        params = (
            {"ef": max(dense.hnsw_ef_search, limit)}
            if kind == "HNSW"
            else {"nprobe": dense.ivf_nprobe}
            if kind == "IVF_FLAT"
            else {}
        )
        return {"metric_type": "IP", "params": params}

    def _bm25(self, queries, limit: int, expr: str) -> list[list[dict]]:
        return self._search(list(queries), "sparse", limit, expr, {"metric_type": "BM25"})

    def _dense(self, vectors, limit: int, expr: str) -> list[list[dict]]:
        return self._search(vectors, "dense", limit, expr, self._dense_params(limit))

    def _hybrid(self, queries, vectors, k: int, depth: int, expr: str) -> list[list[dict]]:
        pymilvus = _pymilvus()
        fusion = self.config.fusion
        ranker = (
            pymilvus.RRFRanker(fusion.rrf_k)
            if fusion.method == "rrf"
            else pymilvus.WeightedRanker(fusion.bm25_weight, fusion.dense_weight, norm_score=True)
        )
        out = []
        for query, vector in zip(queries, vectors):  # one request per question: hybrid_search takes one query each
            requests = [
                pymilvus.AnnSearchRequest(
                    data=[query], anns_field="sparse", param={"metric_type": "BM25"}, limit=depth, expr=expr or None
                ),
                pymilvus.AnnSearchRequest(
                    data=[vector], anns_field="dense", param=self._dense_params(depth), limit=depth, expr=expr or None
                ),
            ]
            hits = self._calls(
                "hybrid_search",
                self.collection,
                requests,
                ranker,
                limit=k,
                output_fields=PASSAGE_FIELDS,
                collection=self.collection,
            )
            out.append(_ordered(hits[0]) if hits else [])
        return out

    def _fuse_here(self, queries, vectors, k: int, depth: int, expr: str) -> list[list[ScoredPassage]]:
        fusion = self.config.fusion
        results = []
        for bm_hits, de_hits in zip(self._bm25(queries, depth, expr), self._dense(vectors, depth, expr)):
            by_row = {h["row"]: h for h in [*de_hits, *bm_hits]}
            bm = {h["row"]: h["score"] for h in bm_hits}
            de = {h["row"]: h["score"] for h in de_hits}
            weights = [fusion.bm25_weight, fusion.dense_weight]
            fused = (
                reciprocal_rank_fusion([list(bm), list(de)], k=fusion.rrf_k, weights=weights)
                if fusion.method == "rrf"
                else weighted_fusion([bm, de], weights)
            )
            results.append(
                [
                    ScoredPassage(_passage(by_row[row]), float(score), rank, bm.get(row), de.get(row))
                    for rank, (row, score) in enumerate(rank_fused(fused, k), start=1)
                ]
            )
        return results

    # ------------------------------------------------------------------- info
    def info(self) -> dict[str, Any]:
        m = self.manifest
        settings = m["milvus"]
        return {
            "index_dir": str(self.directory),
            "backend": "milvus",
            "ragqa_version": m.get("ragqa_version"),
            "format_version": m.get("format_version"),
            "created_at": m.get("created_at"),
            "documents": m["counts"]["documents"],
            "passages": m["counts"]["passages"],
            "vocabulary": m["counts"].get("vocabulary"),
            "roots": m.get("roots", []),
            "source_root": m.get("source_root"),
            "encoder": m["encoder"],
            "milvus": {
                "uri": _redact(settings.get("uri", "")),
                "token_env": settings.get("token_env"),
                "alias": settings["alias"],
                "collection": self.collection,
                "index_type": settings.get("index_type"),
            },
            "faiss": {"type": f"Milvus {settings.get('index_type')} (inner product)", "ntotal": len(self)},
            "chunking": m["config"]["chunking"],
            "bm25": m["config"]["bm25"],
            "fusion": m["config"]["fusion"],
            "excludes": m.get("excludes", []),
            "bytes": sum(f["bytes"] for f in m["files"].values()),
            "disk_bytes": sum(f.stat().st_size for f in self.directory.rglob("*") if f.is_file()),
        }


def _ordered(hits, bm25: bool = False) -> list[dict[str, Any]]:
    """Hits as ``{row, score, entity}``, best first, ties by row (as the built-in backend breaks them).
    BM25 scores are positive (Milvus Lite reports them negated, as distances)."""
    out = []
    for hit in hits:
        entity = hit.get("entity") or {}
        score = float(hit.get("distance", 0.0))
        out.append({"row": int(entity.get("row", hit.get("id"))), "score": abs(score) if bm25 else score, **entity})
    out.sort(key=lambda h: (-h["score"], h["row"]))
    return out


def _scored(hit: Mapping[str, Any], rank: int, bm25: bool = False, dense: bool = False) -> ScoredPassage:
    score = float(hit["score"])
    return ScoredPassage(_passage(hit), score, rank, score if bm25 else None, score if dense else None)
