"""`ragqa serve`: the HTTP API through FastAPI's TestClient and through a real uvicorn process."""

import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'ragqa[serve]'")
httpx = pytest.importorskip("httpx", reason="httpx is not installed (TestClient needs it)")

from fastapi.testclient import TestClient  # noqa: E402

from rag_qa.data import read_squad  # noqa: E402
from rag_qa.pipeline import RagQA  # noqa: E402
from rag_qa.reading.reader import Reader  # noqa: E402
from rag_qa.runtime import cpu_has_native_bf16  # noqa: E402
from rag_qa.service import ServeConfig, create_app  # noqa: E402
from rag_qa.service.batching import MicroBatcher, QueueFull  # noqa: E402

# Answered well clear of the shipped reader's no-answer threshold: these tests are about the
# service; how the reader answers short passages is bench/short_passages.py's and
# tests/test_default_reader.py's.
QUESTION = "Which planet is the largest in the solar system?"


def _wait_ready(client, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/health").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"not ready after {timeout}s: {client.get('/health').json()}")


@pytest.fixture(scope="module")
def serve_config(built_index, tmp_path_factory):
    return ServeConfig(index_dir=str(built_index.directory), feedback_dir=str(tmp_path_factory.mktemp("feedback")))


@pytest.fixture(scope="module")
def client(serve_config):
    with TestClient(create_app(serve_config)) as c:
        _wait_ready(c)
        yield c


def test_ask_answers_with_the_json_of_ask_json(client, built_index):
    response = client.post("/ask", json={"question": QUESTION, "answers": 2})
    assert response.status_code == 200
    data = response.json()
    # `ragqa ask --json`, with the reader torch on a CPU with bfloat16 in hardware and the index's own encoder
    reader = Reader(None, runtime="torch" if cpu_has_native_bf16() else "auto")
    assert client.get("/info").json()["reader"]["backend"] == reader.backend
    qa = RagQA.load(built_index.directory)
    expected = RagQA(qa.index, reader).ask_full(QUESTION, top_k_answers=2).to_dict()
    assert data == json.loads(json.dumps(expected))
    assert not data["abstained"] and "Jupiter" in data["answers"][0]["text"]
    answer = data["answers"][0]
    assert answer["text"] in " ".join(answer["context"].split()) and answer["path"].endswith(answer["source"])


def test_ask_options_and_passages(client):
    data = client.post(
        "/ask", json={"question": QUESTION, "mode": "bm25", "top_k": 2, "passages": True, "no_answer_threshold": 1000}
    ).json()
    assert data["abstained"] and data["answers"] == [] and data["no_answer_threshold"] == 1000
    assert data["best_candidate"] is not None
    assert 1 <= len(data["passages"]) <= 2


def test_search_info_health_and_docs(client):
    hits = client.post("/search", json={"query": "largest planet", "top_k": 3}).json()
    assert 1 <= len(hits) <= 3 and "Jupiter" in hits[0]["text"]
    info = client.get("/info").json()
    assert info["passages"] > 0 and info["batching"]["max_batch"] == 8
    assert "index_dir" not in info and "roots" not in info  # no paths of the machine
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/docs").status_code == 200
    assert "/ask" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"question": ""}, 422, "empty"),
        ({"question": "   \t"}, 422, "empty"),
        ({"question": "x" * 3000}, 422, "over the limit"),
        ({"question": "q " * 50_000}, 413, "over the limit"),
        ({"question": 3}, 422, "question"),
        ({"question": QUESTION, "answers": "two"}, 422, "answers"),
        ({"question": QUESTION, "answers": 0}, 422, "answers"),
        ({"question": QUESTION, "mode": "fuzzy"}, 422, "mode"),
        ({"question": QUESTION, "colour": "red"}, 422, "unknown field 'colour'"),
        ({}, 422, "question"),
    ],
)
def test_bad_input_is_a_one_line_4xx(client, body, status, words):
    response = client.post("/ask", json=body)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and words in detail
    assert "Traceback" not in response.text


def test_wrong_json_is_a_one_line_422(client):
    response = client.post("/ask", content=b'{"question": "what', headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["detail"].startswith("the body is not valid JSON")


def test_a_missing_index_fails_at_start(tmp_path):
    from rag_qa.errors import RagQAError

    with pytest.raises(RagQAError, match="ragqa index"):
        create_app(tmp_path / "nowhere")


def test_health_is_503_until_the_models_are_warm(serve_config, monkeypatch):
    from rag_qa.service import app as app_module

    gate = threading.Event()
    real = app_module._Service.warm_up
    monkeypatch.setattr(app_module._Service, "warm_up", lambda self: (gate.wait(30), real(self)))
    with TestClient(create_app(serve_config)) as c:
        assert c.get("/health").status_code == 503
        busy = c.post("/ask", json={"question": QUESTION})
        assert busy.status_code == 503 and busy.headers["retry-after"]
        gate.set()
        _wait_ready(c)
        assert c.post("/ask", json={"question": QUESTION}).status_code == 200


def test_api_key_is_required_when_set(serve_config, monkeypatch):
    monkeypatch.setenv("RAGQA_TEST_KEY", "s3cret")
    config = ServeConfig(**{**serve_config.__dict__, "api_key_env": "RAGQA_TEST_KEY"})
    with TestClient(create_app(config)) as c:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            response = c.get("/health", headers=headers)
            assert response.status_code == 401 and "Authorization: Bearer" in response.json()["detail"]
        _wait_ready_with = {"Authorization": "Bearer s3cret"}
        deadline = time.monotonic() + 120
        while c.get("/health", headers=_wait_ready_with).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.post("/ask", json={"question": QUESTION}, headers=_wait_ready_with).status_code == 200
        assert c.get("/").status_code == 200  # the page loads; the calls it makes send the key


def test_no_cors_unless_asked(serve_config):
    with TestClient(create_app(serve_config)) as c:
        r = c.options("/ask", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in r.headers
    config = ServeConfig(**{**serve_config.__dict__, "cors_origins": ("http://app.example",)})
    with TestClient(create_app(config)) as c:
        r = c.options("/ask", headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST"})
        assert r.headers["access-control-allow-origin"] == "http://app.example"


def test_feedback_round_trip_into_training_data(client, serve_config):
    data = client.post("/ask", json={"question": QUESTION, "passages": True}).json()
    passage = data["passages"][0]
    at = passage["text"].index("Jupiter")
    ok = client.post(
        "/feedback",
        json={"question": QUESTION, "passage_id": passage["id"], "answer": "Jupiter", "answer_start": at},
    )
    assert ok.status_code == 200, ok.text
    none = client.post(
        "/feedback", json={"question": "Who painted the ceiling?", "passage_id": passage["id"], "answer": None}
    )
    assert none.status_code == 200
    wrong = client.post(
        "/feedback", json={"question": QUESTION, "passage_id": passage["id"], "answer": "Saturn", "answer_start": at}
    )
    assert wrong.status_code == 422 and "not the answer 'Saturn'" in wrong.json()["detail"]
    unknown = client.post("/feedback", json={"question": QUESTION, "passage_id": "nope", "answer": None})
    assert unknown.status_code == 422 and "no passage 'nope'" in unknown.json()["detail"]
    folder = Path(serve_config.feedback_dir)
    assert [p.name for p in folder.glob("*.json")] == [ok.json()["stored"]]
    assert not list(folder.glob("*.tmp"))
    examples = {e.question: e for e in read_squad(folder)}  # what `ragqa train-reader --train FOLDER` reads
    right = examples[QUESTION]
    assert right.answer_texts == ("Jupiter",) and right.context[right.answer_starts[0] :].startswith("Jupiter")
    assert examples["Who painted the ceiling?"].is_impossible


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_batched_reading_answers_as_one_at_a_time(built_index, runtime):
    qa = RagQA.load(built_index.directory, reader_runtime=runtime)
    questions = [QUESTION, "What is the capital of France?", "How are passages stored?", "Which planet is largest?"]
    prepared = [qa.prepare(q, top_k_passages=4, top_k_answers=3) for q in questions]
    batched = qa.read_prepared(prepared)
    # torch reads in bfloat16 on a CPU that has it: padding to the batch's longest pair may move a logit
    # by a unit in its last place (1/32 near 4), so the same answers, with scores equal to bfloat16's precision
    rel = 2e-2 if qa.reader.backend.endswith("bfloat16") else 1e-4
    for p, together in zip(prepared, batched):
        alone = qa.read_prepared([p])[0]
        assert [(a.text, a.start, a.end, a.source) for a in together.answers] == [
            (a.text, a.start, a.end, a.source) for a in alone.answers
        ]
        assert [a.score for a in together.answers] == pytest.approx([a.score for a in alone.answers], rel=rel)
        assert together.no_answer_margin == pytest.approx(alone.no_answer_margin, rel=rel, abs=1e-4)
        assert together.abstained == alone.abstained


def test_the_api_schema_has_every_field_of_ask_json_and_no_other(built_index):
    from rag_qa.service.schemas import AnswerOut, AskResponse, PassageOut

    data = RagQA.load(built_index.directory).ask_full(QUESTION, top_k_answers=2).to_dict(with_passages=True)
    assert set(AskResponse.model_fields) == set(data)
    assert set(AnswerOut.model_fields) == set(data["answers"][0]) == set(data["best_candidate"])
    assert set(PassageOut.model_fields) == set(data["passages"][0])
    assert AskResponse.model_validate(data).model_dump() == data  # nothing dropped or converted


def test_micro_batcher_groups_questions_and_bounds_its_queue():
    seen, gate, working = [], threading.Event(), threading.Event()

    def work(items):
        working.set()
        gate.wait(10)
        seen.append(list(items))
        return [i * 10 for i in items]

    batcher = MicroBatcher(work, max_batch=3, max_wait_s=0.05, max_queue=4)
    first = batcher.submit(0)
    assert working.wait(10)  # taken by the worker, which waits for the gate
    futures = [batcher.submit(i) for i in range(1, 5)]
    with pytest.raises(QueueFull):
        batcher.submit(99)
    gate.set()
    assert [f.result(5) for f in [first, *futures]] == [0, 10, 20, 30, 40]
    assert seen[0] == [0] and seen[1] == [1, 2, 3] and seen[2] == [4]
    batcher.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(index_dir, feedback_dir, *options, env=None):
    """A `ragqa serve` process on a free loopback port: ``(process, port)``."""
    port = _free_port()
    ragqa = Path(sys.executable).with_name("ragqa")
    proc = subprocess.Popen(
        [str(ragqa), "serve", "--index-dir", str(index_dir), "--port", str(port), "--feedback-dir", str(feedback_dir)]
        + list(options),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, HF_HUB_OFFLINE="1", **(env or {})),
        text=True,
    )
    return proc, port


def _wait_healthy(proc, port, timeout=120.0) -> list[tuple[int, str]]:
    """Poll /health until it is 200; the (status, detail) of each answer before."""
    before = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
            if response.status_code == 200:
                return before
            before.append((response.status_code, response.json()["detail"]))
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"not healthy after {timeout}s")


def _stop(proc) -> str:
    """SIGTERM, then the log once the process has exited cleanly."""
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    # uvicorn shuts down gracefully, then ends by the signal it caught (the exit status of a SIGTERM).
    assert proc.returncode in (0, -signal.SIGTERM), out
    assert "Application shutdown complete" in out and "Traceback" not in out, out
    return out


def test_a_real_server_starts_answers_and_stops_on_sigterm(built_index, tmp_path):
    proc, port = _start_server(built_index.directory, tmp_path / "fb")
    try:
        _wait_healthy(proc, port)
        answer = httpx.post(f"http://127.0.0.1:{port}/ask", json={"question": QUESTION}, timeout=30).json()
        assert "Jupiter" in answer["answers"][0]["text"]
    finally:
        _stop(proc)


def _held_request(port: int, path: str, body: dict) -> tuple[socket.socket, bytes]:
    """A POST whose headers the server has taken: it answered ``100 Continue`` and waits for the body."""
    data = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nExpect: 100-continue\r\n\r\n".encode()
    )
    seen = b""
    while b"\r\n\r\n" not in seen:
        chunk = sock.recv(1024)
        assert chunk, f"the server closed the connection: {seen!r}"
        seen += chunk
    assert seen.startswith(b"HTTP/1.1 100"), seen
    return sock, data


def _finish(sock: socket.socket, data: bytes) -> tuple[int, dict | str]:
    """Send the held request's body; its status and JSON (or text) once the server has answered and closed."""
    sock.sendall(data)
    raw = b""
    while chunk := sock.recv(65536):
        raw += chunk
    sock.close()
    if not raw:
        return 0, "the connection was closed without an answer"
    response = http.client.HTTPResponse(_Received(raw))
    response.begin()
    body = response.read().decode()
    return response.status, json.loads(body) if response.status == 200 else body


class _Received:
    """Bytes read from a socket, as http.client reads a response from one."""

    def __init__(self, data: bytes):
        self.data = data

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self.data)


def test_sigterm_answers_the_requests_in_flight_and_keeps_their_feedback(built_index, tmp_path):
    proc, port = _start_server(built_index.directory, tmp_path / "fb", "--batch-size", "2")
    try:
        _wait_healthy(proc, port)
        base = f"http://127.0.0.1:{port}"
        passage = httpx.post(f"{base}/ask", json={"question": QUESTION, "passages": True}, timeout=30).json()
        passage = passage["passages"][0]
        posted = httpx.post(
            f"{base}/feedback",
            json={"question": "Which planet is largest?", "passage_id": passage["id"], "answer": None},
            timeout=30,
        )
        assert posted.status_code == 200
        questions = [QUESTION, "What is the capital of France?", "Which planet is largest?", "How are passages stored?"]
        held = [_held_request(port, "/ask", {"question": q, "top_k": 20}) for q in questions]
        at = passage["text"].index("Jupiter")
        held_feedback = _held_request(
            port,
            "/feedback",
            {"question": QUESTION, "passage_id": passage["id"], "answer": "Jupiter", "answer_start": at},
        )
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # shutting down: no new connections
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except ConnectionRefusedError:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the server still accepts connections 30 s after SIGTERM")
        answered = [_finish(sock, data) for sock, data in held]
        stored = _finish(*held_feedback)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert [status for status, _ in answered] == [200] * len(questions), answered
    assert [a["question"] for _, a in answered] == questions
    assert "Jupiter" in answered[0][1]["answers"][0]["text"]
    assert stored[0] == 200, stored
    assert proc.returncode in (0, -signal.SIGTERM), out
    assert "Waiting for connections to close" in out and "Application shutdown complete" in out, out
    assert "Traceback" not in out, out
    examples = {e.question: e for e in read_squad(tmp_path / "fb")}  # on disk after the exit, for train-reader
    assert examples[QUESTION].answer_texts == ("Jupiter",) and examples["Which planet is largest?"].is_impossible


def test_several_workers_are_healthy_only_once_each_is_warm(built_index, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc, port = _start_server(built_index.directory, tmp_path / "fb", "--workers", "2", env={"TMPDIR": str(tmp)})
    try:
        before = _wait_healthy(proc, port)
        assert before and all(status == 503 for status, _ in before), before  # loading two models takes seconds
        # Each worker marks itself warm in a folder `ragqa serve` made: both have, once /health says 200.
        (ready,) = tmp.glob("ragqa-serve-ready-*")
        assert len(list(ready.iterdir())) == 2
        for _ in range(8):  # a new connection each time: either worker may take it
            response = httpx.post(f"http://127.0.0.1:{port}/ask", json={"question": QUESTION}, timeout=60)
            assert response.status_code == 200, response.text
            assert "Jupiter" in response.json()["answers"][0]["text"]
    finally:
        out = _stop(proc)
    assert out.count("Application shutdown complete") == 2 and "Stopping parent process" in out, out
    assert not list(tmp.glob("ragqa-serve-ready-*"))  # nothing left behind


def test_health_counts_the_warm_workers(serve_config, tmp_path):
    ready = tmp_path / "ready"
    ready.mkdir()
    config = ServeConfig(**{**serve_config.__dict__, "workers": 2, "ready_dir": str(ready)})
    with TestClient(create_app(config)) as c:
        deadline = time.monotonic() + 120
        while not (ready / str(os.getpid())).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        response = c.get("/health")
        assert response.status_code == 503 and response.headers["retry-after"]
        assert response.json()["detail"].startswith("1 of 2 workers have their models warm")
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        (ready / gone.stdout.strip()).touch()  # a worker that was killed leaves its file behind
        assert c.get("/health").status_code == 503
        sibling = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            (ready / str(sibling.pid)).touch()
            assert c.get("/health").json() == {"status": "ok"}
            assert c.post("/ask", json={"question": QUESTION}).status_code == 200
        finally:
            sibling.kill()
            sibling.wait()
    assert not (ready / str(os.getpid())).exists()  # a worker that stops takes its mark away


def test_serve_refuses_a_public_address_without_a_key(built_index, monkeypatch):
    from click.testing import CliRunner

    from rag_qa.cli import cli

    monkeypatch.delenv("RAGQA_API_KEY", raising=False)
    result = CliRunner().invoke(cli, ["serve", "--index-dir", str(built_index.directory), "--host", "0.0.0.0"])
    assert result.exit_code != 0 and "RAGQA_API_KEY" in result.output and "Traceback" not in result.output


def test_ask_does_not_import_the_web_framework(built_index):
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom rag_qa.cli import cli\n"
        f"r = CliRunner().invoke(cli, ['ask', {QUESTION!r}, '--index-dir', {str(built_index.directory)!r}, '--json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1")
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_new_index_generation_is_served_without_a_restart(corpus_dir, tmp_path, monkeypatch):
    import shutil

    from rag_qa import Index
    from rag_qa.service import app as app_module

    monkeypatch.setattr(app_module._Service, "RELOAD_CHECK_S", 0.0)
    docs = tmp_path / "docs"
    shutil.copytree(corpus_dir, docs)
    directory = tmp_path / "index"
    Index.build([docs], directory, show_progress=False)
    config = ServeConfig(index_dir=str(directory), feedback_dir=str(tmp_path / "fb"))
    question = "What colour is the heron of Lake Orla?"
    with TestClient(create_app(config)) as c:
        _wait_ready(c)
        before = c.post("/search", json={"query": "heron Lake Orla", "top_k": 1}).json()
        assert not before or "Orla" not in before[0]["text"]
        (docs / "birds.md").write_text("# Birds\n\nThe heron of Lake Orla is violet.\n", encoding="utf-8")
        Index.build([docs], directory, show_progress=False)
        data = c.post("/ask", json={"question": question, "no_answer_threshold": -1e9}).json()
        assert "violet" in data["answers"][0]["text"]
        assert c.get("/info").json()["reloads"] == 1


def test_a_question_in_flight_during_a_reload_is_answered_from_the_old_generation(corpus_dir, tmp_path, monkeypatch):
    import shutil

    from rag_qa import Index
    from rag_qa.pipeline import RagQA as Pipeline
    from rag_qa.service import app as app_module

    monkeypatch.setattr(app_module._Service, "RELOAD_CHECK_S", 0.0)
    gate, reading = threading.Event(), threading.Event()
    real = Pipeline.read_prepared

    def held(self, items):
        reading.set()
        gate.wait(30)
        return real(self, items)

    monkeypatch.setattr(Pipeline, "read_prepared", held)
    docs = tmp_path / "docs"
    shutil.copytree(corpus_dir, docs)
    directory = tmp_path / "index"
    Index.build([docs], directory, show_progress=False)
    config = ServeConfig(index_dir=str(directory), feedback_dir=str(tmp_path / "fb"))
    question = {"question": "What colour is the heron of Lake Orla?", "no_answer_threshold": -1e9, "passages": True}
    with TestClient(create_app(config)) as c:
        _wait_ready(c)
        answered = {}
        first = threading.Thread(target=lambda: answered.update(old=c.post("/ask", json=question)))
        first.start()
        assert reading.wait(30)  # its passages were retrieved from the first generation; now it is being read
        (docs / "birds.md").write_text("# Birds\n\nThe heron of Lake Orla is violet.\n", encoding="utf-8")
        Index.build([docs], directory, show_progress=False)
        hits = c.post("/search", json={"query": "heron Lake Orla", "top_k": 1}).json()
        assert "violet" in hits[0]["text"] and c.get("/info").json()["reloads"] == 1  # the new one is live
        gate.set()
        first.join(60)
        old = answered["old"]
        assert old.status_code == 200, old.text
        assert not any("birds.md" in p["source"] for p in old.json()["passages"])
        assert "violet" not in old.json()["answers"][0]["text"]
        new = c.post("/ask", json=question).json()
        assert "violet" in new["answers"][0]["text"]


def test_the_web_page_is_served_offline(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert '<input id="question"' in page and "/ask" in page and "/feedback" in page
    assert "http://" not in page and "https://" not in page  # no CDN: it works offline
    assert "innerHTML" not in page  # document text is set as text, never parsed as HTML


def test_a_full_queue_answers_503_with_retry_after(serve_config, monkeypatch):
    from rag_qa.pipeline import RagQA as Pipeline
    from rag_qa.service.batching import MicroBatcher as Batcher

    gate, reading, queued = threading.Event(), threading.Event(), threading.Semaphore(0)
    real, real_submit = Pipeline.read_prepared, Batcher.submit
    monkeypatch.setattr(
        Pipeline, "read_prepared", lambda self, items: (reading.set(), gate.wait(30), real(self, items))[2]
    )
    monkeypatch.setattr(Batcher, "submit", lambda self, item: (real_submit(self, item), queued.release())[0])
    config = ServeConfig(**{**serve_config.__dict__, "queue_size": 1, "batch_size": 1})
    with TestClient(create_app(config)) as c:
        _wait_ready(c)
        results = []
        threads = [
            threading.Thread(target=lambda: results.append(c.post("/ask", json={"question": QUESTION})))
            for _ in range(2)
        ]
        try:  # one is read (held at the gate), then one waits in the queue: each step awaited, not timed
            threads[0].start()
            assert queued.acquire(timeout=30) and reading.wait(30)
            threads[1].start()
            assert queued.acquire(timeout=30)
            refused = c.post("/ask", json={"question": QUESTION})
        finally:
            gate.set()
        for t in threads:
            t.join(30)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "too many questions" in refused.json()["detail"]
    assert [r.status_code for r in results] == [200, 200]


def test_questions_past_the_queue_are_refused_even_beyond_the_thread_pool(serve_config, monkeypatch):
    """More questions at once than the server has threads: those past the batch and the queue
    are refused at once, not left to pile up waiting for a thread."""
    from rag_qa.pipeline import RagQA as Pipeline

    gate = threading.Event()
    real = Pipeline.read_prepared
    monkeypatch.setattr(Pipeline, "read_prepared", lambda self, items: (gate.wait(60), real(self, items))[1])
    config = ServeConfig(**{**serve_config.__dict__, "queue_size": 50, "batch_size": 1})
    with TestClient(create_app(config)) as c:
        _wait_ready(c)
        results = []
        threads = [
            threading.Thread(target=lambda: results.append(c.post("/ask", json={"question": QUESTION}).status_code))
            for _ in range(70)  # the thread pool runs 40 requests at a time
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(results) < 19 and time.monotonic() < deadline:
            time.sleep(0.1)
        refused_while_held = sorted(results)
        gate.set()
        for t in threads:
            t.join(60)
    assert refused_while_held == [503] * 19  # 70 - (1 read + 50 waiting)
    assert sorted(results) == [200] * 51 + [503] * 19


def test_a_question_that_waits_too_long_is_503_and_is_not_read(serve_config, monkeypatch):
    from rag_qa.pipeline import RagQA as Pipeline

    gate, reading, read = threading.Event(), threading.Event(), []
    real = Pipeline.read_prepared

    def held(self, items):
        reading.set()
        gate.wait(30)
        read.extend(p.question for p in items)
        return real(self, items)

    monkeypatch.setattr(Pipeline, "read_prepared", held)
    config = ServeConfig(**{**serve_config.__dict__, "batch_size": 1, "request_timeout_s": 1.0})
    with TestClient(create_app(config)) as c:
        _wait_ready(c)
        first = threading.Thread(target=lambda: c.post("/ask", json={"question": QUESTION}))
        first.start()
        try:
            assert reading.wait(30)  # read, held at the gate
            late = c.post("/ask", json={"question": "What is the capital of France?"})  # waits behind it, gives up
        finally:
            gate.set()
        first.join(30)
        assert c.post("/ask", json={"question": "Which planet is largest?"}).status_code == 200
    assert late.status_code == 503 and late.headers["retry-after"] == "5"
    assert late.json()["detail"] == "the question waited over 1 s for the reader: retry in a moment"
    assert read == [QUESTION, "Which planet is largest?"]  # the abandoned question was never read


_WRITER = """
import os, signal, sys
from rag_qa.service.feedback import FeedbackStore
from rag_qa.types import Passage

mode, at = sys.argv[3], int(sys.argv[4])
calls = {"replace": 0, "fsync": 0}
real_replace, real_fsync = os.replace, os.fsync


def kill():
    os.kill(os.getpid(), signal.SIGKILL)


def replace(src, dst):  # the rename that publishes a record
    calls["replace"] += 1
    if mode == "before-rename" and calls["replace"] == at:
        kill()
    real_replace(src, dst)
    if mode == "after-rename" and calls["replace"] == at:
        kill()


def fsync(fd):  # odd calls: the new file's data; even calls: the folder, after the rename
    calls["fsync"] += 1
    if mode == "at-fsync" and calls["fsync"] == at:
        kill()
    real_fsync(fd)


os.replace, os.fsync = replace, fsync
store = FeedbackStore(sys.argv[1])
text = "The heron of Lake Orla is grey and nests in the reeds. " * 40
passages = [Passage(f"p{i}", f"d{i}", f"docs/{i}.md", text, 0, len(text)) for i in range(5)]
for n in range(10**6):
    record, _ = store.add(f"Question {sys.argv[2]}-{n}?", passages[n % 5], "grey", 26)
    print(record["question"], flush=True)  # printed only once add() has returned
"""


def test_feedback_survives_kill_9_at_any_moment(tmp_path):
    folder = tmp_path / "feedback"
    acknowledged: list[str] = []
    # killed at chosen points of a write (before and after the rename, before each fsync), then at odd moments
    rounds = [("before-rename", 3), ("after-rename", 4), ("at-fsync", 5), ("at-fsync", 6)]
    rounds += [("none", 3 + 7 * n) for n in range(4)]
    for round_, (mode, at) in enumerate(rounds):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(folder), str(round_), mode, str(at)], stdout=subprocess.PIPE, text=True
        )
        if mode == "none":
            for _ in range(at):
                acknowledged.append(proc.stdout.readline().strip())
            time.sleep(0.003 * round_)
            proc.kill()
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        acknowledged += [q for q in rest.splitlines() if q]
        # every file still parses, and holds every record whose write was acknowledged
        stored = [q.question for q in read_squad(folder)] if folder.exists() else []
        assert set(acknowledged) <= set(stored), sorted(set(acknowledged) - set(stored))[:3]
        assert len(stored) == len(set(stored))  # none twice
        assert len(stored) - len(acknowledged) <= round_ + 1  # at most the one being written when killed
    assert len(acknowledged) >= 4 * 3


@pytest.mark.slow
def test_train_reader_reads_the_feedback_folder(tmp_path, tiny_qa_base):
    from click.testing import CliRunner

    from rag_qa.cli import cli
    from rag_qa.service.feedback import FeedbackStore
    from rag_qa.types import Passage

    names, colours = ["Anna", "Boris", "Chen", "Dara"], ["red", "blue", "green", "purple"]

    def corrections(folder, n):
        store = FeedbackStore(folder)
        for i in range(n):
            name, colour = names[i % 4], colours[(i // 4) % 4]
            text = f"It rains here. {name} likes the colour {colour}. Today {i}."
            passage = Passage(f"p{i}", f"d{i % 10}", f"docs/d{i % 10}.md", text, 0, len(text))
            _, path = store.add(f"Which colour does {name} like?", passage, colour, text.index(colour))
        store.add("Who painted the ceiling?", passage, None, None)
        return path

    corrections(tmp_path / "feedback", 40)
    dev = corrections(tmp_path / "dev", 8)
    out = tmp_path / "reader"
    result = CliRunner().invoke(
        cli,
        ["train-reader", "--train", str(tmp_path / "feedback"), "--eval", str(dev), "--base", str(tiny_qa_base)]
        + ["--out", str(out), "--max-steps", "2", "-q"],
    )
    assert result.exit_code == 0, result.output
    assert "Reader saved to" in result.output and (out / "config.json").is_file()
