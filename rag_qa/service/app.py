"""The FastAPI app: request models in, one library call, the library's JSON out."""

from __future__ import annotations

import hmac
import json
import logging
import os
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag_qa.errors import InputError, RagQAError
from rag_qa.pipeline import AskResult, PreparedQuestion, RagQA, hit_dict, index_source_root
from rag_qa.retrieval import storage
from rag_qa.retrieval.index import Index
from rag_qa.runtime import serving_reader_runtime
from rag_qa.service.batching import MicroBatcher, QueueFull
from rag_qa.service.feedback import FeedbackStore
from rag_qa.service.schemas import AskRequest, AskResponse, FeedbackRequest, FeedbackResponse, SearchRequest

logger = logging.getLogger(__name__)

CONFIG_ENV = "RAGQA_SERVE_CONFIG"  # how `ragqa serve` hands its settings to each uvicorn worker


@dataclass(frozen=True)
class ServeConfig:
    """Settings of the service; ``api_key_env`` names the environment variable holding the key (unset: no key)."""

    index_dir: str = "index"
    reader: str | None = None
    runtime: str | None = None
    api_key_env: str = "RAGQA_API_KEY"
    feedback_dir: str = "feedback"
    max_body_bytes: int = 64 * 1024
    max_question_chars: int = 2000
    batch_size: int = 8
    batch_wait_ms: float = 5.0
    queue_size: int = 64
    request_timeout_s: float = 60.0
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    # With several worker processes, each marks itself warm in ``ready_dir`` (a file named by its pid), and
    # /health is 200 only once ``workers`` of them are: any worker may answer the next request.
    workers: int = 1
    ready_dir: str | None = None

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None


def app_from_env() -> FastAPI:
    """The app for a uvicorn worker, from the settings `ragqa serve` put in :data:`CONFIG_ENV`."""
    raw = json.loads(os.environ[CONFIG_ENV])
    raw["cors_origins"] = tuple(raw.get("cors_origins") or ())
    return create_app(ServeConfig(**raw))


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": " ".join(str(detail).split())}, status_code=status, headers=headers)


class _Guard:
    """ASGI middleware: the API key (constant-time compare) and the request body size limit."""

    def __init__(self, app: ASGIApp, api_key: str | None, max_body_bytes: int, max_in_flight: int):
        self.app = app
        self.expected = f"Bearer {api_key}".encode() if api_key else None
        self.max_body_bytes = max_body_bytes
        # Questions being answered or waiting for a thread to answer them: counted here, before the
        # thread pool (40 threads) where waiting requests would otherwise pile up without a bound.
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        # The web page itself holds no data (a browser cannot send the key to load it); what it calls needs the key.
        page = scope["path"] == "/" and scope["method"] in ("GET", "HEAD")
        if self.expected is not None and not page:
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                response = _error(401, "missing or wrong API key: send the header 'Authorization: Bearer KEY'")
                response.headers["WWW-Authenticate"] = "Bearer"
                await response(scope, receive, send)
                return
        too_big = _error(
            413, f"the request body is over the limit of {self.max_body_bytes:,} bytes: send a shorter question"
        )
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            await too_big(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise _BodyTooBig
            return message

        busy = _error(503, "too many questions are waiting: retry in a moment", {"Retry-After": "1"})
        reads = scope["method"] == "POST" and scope["path"] in ("/ask", "/search")
        counted = False
        if reads:
            # A question is counted once its whole body is in (a client slow to send holds no place),
            # and before it waits for one of the threads that answer.
            chunks = []
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                chunks.append(message.get("body", b""))
                seen += len(chunks[-1])
                if seen > self.max_body_bytes:
                    await too_big(scope, receive, send)
                    return
                if not message.get("more_body", False):
                    break
            if self.in_flight >= self.max_in_flight:
                await busy(scope, receive, send)
                return
            self.in_flight += 1
            counted = True
            body = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

            async def limited() -> Message:  # the body read above, then what the client sends next
                return body.pop() if body else await receive()

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracking_send)
        except _BodyTooBig:
            if not started:
                await too_big(scope, receive, send)
        finally:
            if counted:
                self.in_flight -= 1


class _BodyTooBig(Exception):
    pass


class _Service:
    """What the app holds: the pipeline (loaded once), the reader's batcher and the feedback store.

    When ``ragqa index`` swaps in a new generation (the manifest changes), the
    next request loads it and later requests use it, with the same reader;
    requests in flight finish on the old one, closed once they have had
    ``request_timeout_s`` to do so.
    """

    RELOAD_CHECK_S = 1.0  # how often a request looks at the manifest

    def __init__(self, config: ServeConfig):
        self.config = config
        # No runtime asked for: the index's own query encoder, and the reader that is faster once warm.
        self.qa = RagQA.load(
            config.index_dir,
            reader=config.reader,
            runtime=config.runtime,
            reader_runtime=serving_reader_runtime(config.runtime),
        )
        self.batcher: MicroBatcher[PreparedQuestion, AskResult] | None = None
        self.feedback = FeedbackStore(config.feedback_dir)
        self.ready = threading.Event()
        self.failed: str | None = None
        self._reload_lock = threading.Lock()
        self._checked_at = time.monotonic()
        self.reloads = 0

    def warm_up(self) -> None:
        try:
            self.qa.index.warm_up()
            self.qa.reader.warm_up()
            self.qa.question_tokens("warm up")
            self.batcher = MicroBatcher(
                lambda items: self.qa.read_prepared(items),
                max_batch=self.config.batch_size,
                max_wait_s=self.config.batch_wait_ms / 1000,
                max_queue=self.config.queue_size,
            )
            self.ready.set()
            if self.config.ready_dir:
                self._marker().touch()
            logger.info("models warm: ready")
        except RagQAError as exc:
            self.failed = str(exc)
            logger.error("the models could not be loaded: %s", exc)

    def _marker(self) -> Path:
        return Path(self.config.ready_dir) / str(os.getpid())

    def warm_workers(self) -> int:
        """How many worker processes of the service have their models warm, this one included."""
        if not self.config.ready_dir:
            return int(self.ready.is_set())
        try:
            pids = [int(p.name) for p in Path(self.config.ready_dir).iterdir() if p.name.isdigit()]
        except OSError as exc:
            logger.warning("the workers' ready folder could not be read, counting this worker only: %s", exc)
            return int(self.ready.is_set())
        return sum(_alive(pid) for pid in pids)

    def current(self) -> RagQA:
        """The pipeline over the live generation of the index (reloaded when the manifest changed)."""
        now = time.monotonic()
        if now - self._checked_at < self.RELOAD_CHECK_S or not self._reload_lock.acquire(blocking=False):
            return self.qa
        try:
            self._checked_at = now
            old = self.qa
            try:
                live = storage.read_manifest(Path(self.config.index_dir))
            except RagQAError as exc:  # a build in the middle of its swap, or a removed index: keep serving
                logger.warning("the index manifest could not be read, serving the loaded index: %s", exc)
                return old
            if storage.manifest_sha256(live) == storage.manifest_sha256(old.index.manifest):
                return old
            try:
                index = Index.load(self.config.index_dir, runtime=self.config.runtime).warm_up()
            except RagQAError as exc:
                logger.warning("the new index could not be loaded, serving the previous one: %s", exc)
                return old
            qa = RagQA(index, old.reader)  # the same reader, already warm
            self.qa = qa
            self.reloads += 1
            logger.info("index reloaded: %d passages", len(index))
            timer = threading.Timer(self.config.request_timeout_s, old.index.close)
            timer.daemon = True
            timer.start()
            return qa
        finally:
            self._reload_lock.release()

    def close(self) -> None:
        if self.config.ready_dir:
            self._marker().unlink(missing_ok=True)
        if self.batcher is not None:
            self.batcher.close()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a worker that was killed leaves its ready file behind)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def create_app(config: ServeConfig | str | Path = "index", **settings: Any) -> FastAPI:
    """The service over one index: ``create_app("index/")`` or ``create_app(ServeConfig(...))``.

    The index is loaded here (a missing or broken index fails now, in one
    line); the models are warmed up in the background once the app starts,
    and ``GET /health`` answers 503 until they are.
    """
    if not isinstance(config, ServeConfig):
        config = ServeConfig(index_dir=str(config), **settings)
    service = _Service(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        thread = threading.Thread(target=service.warm_up, name="ragqa-warm-up", daemon=True)
        thread.start()
        yield
        thread.join()
        service.close()  # questions already queued are answered before the worker stops

    app = FastAPI(
        title="ragqa",
        summary="Question answering over your documents",
        lifespan=lifespan,
    )
    app.state.service = service
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(
        _Guard,
        api_key=config.api_key(),
        max_body_bytes=config.max_body_bytes,
        max_in_flight=config.queue_size + config.batch_size,  # a batch being read and a full queue
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _one_line(exc.errors()))

    @app.exception_handler(InputError)
    async def _bad_input(request: Request, exc: InputError) -> JSONResponse:
        return _error(422, str(exc))

    @app.exception_handler(RagQAError)
    async def _failed(request: Request, exc: RagQAError) -> JSONResponse:
        return _error(500, str(exc))

    def _check_question(text: str, what: str = "question") -> None:
        if not text.strip():
            raise InputError(f"the {what} is empty: send the {what} as a non-blank string")
        if len(text) > config.max_question_chars:
            raise InputError(
                f"the {what} has {len(text):,} characters, over the limit of {config.max_question_chars:,}: shorten it"
            )

    def _not_ready() -> JSONResponse | None:
        if service.failed:
            return _error(503, f"the models could not be loaded: {service.failed}")
        if not service.ready.is_set():
            return _error(503, "the models are still loading: retry in a few seconds", {"Retry-After": "2"})
        return None

    page = (Path(__file__).parent / "static" / "index.html").read_text(encoding="utf-8")

    @app.get("/", include_in_schema=False)
    def index_page() -> HTMLResponse:
        """The web page: ask, see each answer marked in its passage, correct it."""
        return HTMLResponse(page)

    @app.get("/health", summary="200 once the models are loaded and warm (in every worker), 503 before")
    def health() -> JSONResponse:
        busy = _not_ready()
        if busy is not None:
            return busy
        if config.workers > 1:
            warm = service.warm_workers()
            if warm < config.workers:
                return _error(
                    503,
                    f"{warm} of {config.workers} workers have their models warm: retry in a few seconds",
                    {"Retry-After": "2"},
                )
        return JSONResponse({"status": "ok"})

    @app.get("/info", summary="What the index holds and how the service reads")
    def info() -> dict[str, Any]:
        index_info = service.current().index.info()
        keep = ("ragqa_version", "format_version", "created_at", "documents", "passages", "vocabulary", "chunking")
        batcher = service.batcher
        return {
            **{k: index_info[k] for k in keep},
            "encoder": {
                "default": index_info["encoder"].get("default"),
                "dimension": index_info["encoder"]["dimension"],
            },
            "fusion": index_info["fusion"],
            "reader": {"backend": service.qa.reader.backend if service.ready.is_set() else None},
            "batching": {
                "max_batch": config.batch_size,
                "max_wait_ms": config.batch_wait_ms,
                "queue_size": config.queue_size,
                "batches": batcher.batches if batcher else 0,
                "questions": batcher.items if batcher else 0,
            },
            "reloads": service.reloads,
        }

    @app.post(
        "/ask",
        response_model=AskResponse,
        summary="Answer a question (the JSON of `ragqa ask --json`, read with the reader `/info` names)",
        responses={
            503: {"description": "models loading, too many questions waiting, or waited too long (see Retry-After)"}
        },
    )
    def ask(body: AskRequest):
        _check_question(body.question)
        busy = _not_ready()
        if busy is not None:
            return busy
        prepared = service.current().prepare(
            body.question,
            top_k_passages=body.top_k,
            top_k_answers=body.answers,
            mode=body.mode,
            source=body.source,
            no_answer_threshold=body.no_answer_threshold,
        )
        try:
            future = service.batcher.submit(prepared)
        except QueueFull:
            return _error(503, "too many questions are waiting: retry in a moment", {"Retry-After": "1"})
        try:
            result: AskResult = future.result(timeout=config.request_timeout_s)
        except FutureTimeout:
            future.cancel()  # not read at all if the reader has not taken it yet
            return _error(
                503,
                f"the question waited over {config.request_timeout_s:g} s for the reader: retry in a moment",
                {"Retry-After": "5"},
            )
        return JSONResponse(result.to_dict(with_passages=body.passages))

    @app.post("/search", summary="The passages that best match a query (the JSON of `ragqa search --json`)")
    def search(body: SearchRequest) -> JSONResponse:
        _check_question(body.query, "query")
        busy = _not_ready()
        if busy is not None:
            return busy
        index = service.current().index
        hits = index.search(body.query, k=body.top_k, mode=body.mode, source=body.source)
        root = index_source_root(index)
        return JSONResponse([hit_dict(h, root) for h in hits])

    @app.post("/feedback", response_model=FeedbackResponse, summary="Store the right answer to a question")
    def feedback(body: FeedbackRequest) -> FeedbackResponse:
        _check_question(body.question)
        passage = service.current().index.passage(body.passage_id)
        if passage is None:
            raise InputError(
                f"no passage {body.passage_id!r} in the index: send the passage_id of an answer or a passage read"
            )
        record, path = service.feedback.add(body.question, passage, body.answer, body.answer_start)
        return FeedbackResponse(stored=path.name, id=record["id"])

    return app


def _one_line(errors: list[dict[str, Any]]) -> str:
    """Pydantic's validation errors as one line: where, and what is wrong."""
    parts = []
    for err in errors[:3]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        if err.get("type") == "json_invalid":
            parts.append("the body is not valid JSON: send a JSON object")
        elif err.get("type") == "extra_forbidden":
            parts.append(f"unknown field {where!r}: leave it out")
        else:
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


def config_json(config: ServeConfig) -> str:
    return json.dumps(asdict(config))
