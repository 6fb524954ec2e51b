import json
import math
import random
from dataclasses import replace

import pytest

from rag_qa.reading.reader import Reader
from rag_qa.training.reader import ReaderTrainConfig, train_reader
from rag_qa.types import Passage

COLORS = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white"]
NAMES = ["Anna", "Boris", "Chen", "Dara", "Emil", "Fatima", "Goran", "Hana"]


def tiny_config(base, **settings) -> ReaderTrainConfig:
    """A few steps on 64-token windows of the tiny base, in float32."""
    defaults = dict(max_seq_length=64, doc_stride=32, batch_size=8, precision="fp32", eval_examples=4)
    return ReaderTrainConfig(base=str(base), **{**defaults, **settings})


def learning_config(base, **settings) -> ReaderTrainConfig:
    """Two passes at a high learning rate without warm-up: enough for the tiny base's loss to fall."""
    return tiny_config(base, learning_rate=2e-3, epochs=2, eval_steps=8, logging_steps=2, warmup_ratio=0.0, **settings)


def make_squad(path, n, seed):
    """Questions whose answer is always the colour in 'X likes the colour C.'"""
    rng = random.Random(seed)
    paragraphs = []
    for i in range(n):
        name, color = rng.choice(NAMES), rng.choice(COLORS)
        filler = " ".join(
            rng.choice(["It", "rains", "often", "here", "and", "there", "today"]) for _ in range(rng.randint(3, 12))
        )
        context = f"{filler}. {name} likes the colour {color}. {filler}."
        paragraphs.append(
            {
                "context": context,
                "qas": [
                    {
                        "id": f"q{i}",
                        "question": f"Which colour does {name} like?",
                        "answers": [{"text": color, "answer_start": context.index(f"colour {color}") + 7}],
                    }
                ],
            }
        )
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": f"t{seed}", "paragraphs": paragraphs}]}))
    return path


@pytest.mark.slow
def test_train_reader_smoke(tmp_path, tiny_qa_base):
    train = make_squad(tmp_path / "train.json", 256, seed=1)
    dev = make_squad(tmp_path / "dev.json", 32, seed=2)
    config = ReaderTrainConfig(
        base=str(tiny_qa_base),
        max_seq_length=64,
        doc_stride=32,
        learning_rate=2e-3,
        batch_size=16,
        epochs=3,
        eval_steps=16,
        logging_steps=4,
        precision="fp32",
        warmup_ratio=0.0,
    )
    out = tmp_path / "reader"
    results = train_reader(train, out, config, eval_path=dev, show_progress=False)

    losses = [h["loss"] for h in results["log_history"] if "loss" in h]
    assert losses[-1] < losses[0] * 0.7
    assert results["f1"] > 50
    saved = json.loads((out / "eval_results.json").read_text())
    assert saved["exact_match"] == results["exact_match"]
    assert "exact match" in (out / "README.md").read_text()
    assert not (out / "training_args.bin").exists()  # no pickle in the model directory

    from transformers import AutoModelForQuestionAnswering

    AutoModelForQuestionAnswering.from_pretrained(str(out))  # plain transformers loads it
    reader = Reader(out, max_seq_length=64, doc_stride=32, precision="float32")
    passage = Passage("p", "d", "d.txt", "It rains here. Boris likes the colour purple. Today.", 0, 52)
    (answer,) = reader.read("Which colour does Boris like?", [passage], top_k=1)
    assert answer.text == "purple"
    assert passage.text[answer.start : answer.end] == "purple"


def test_reader_train_config_rejects_checkpoints_between_evaluations():
    from rag_qa.errors import InputError
    from rag_qa.training.reader import ReaderTrainConfig

    with pytest.raises(InputError, match=r"save_steps \(50\) must be a multiple of eval_steps \(250\)"):
        ReaderTrainConfig(eval_steps=250, save_steps=50)
    assert ReaderTrainConfig(eval_steps=100, save_steps=300).save_steps == 300


def test_reader_train_config_rejects_bad_stride():
    from rag_qa.errors import InputError

    with pytest.raises(InputError, match="doc_stride"):
        ReaderTrainConfig(max_seq_length=64, doc_stride=64)


def test_train_reader_continues_from_a_float16_reader(tmp_path, tiny_qa_base):
    """The shipped readers are float16; training further from one must work (float32 master weights)."""
    from rag_qa.training.reader import export_reader

    half = export_reader(tiny_qa_base, tmp_path / "half", dtype="float16")
    train = make_squad(tmp_path / "train.json", 32, seed=3)
    config = ReaderTrainConfig(
        base=str(half),
        max_seq_length=64,
        doc_stride=32,
        batch_size=16,
        max_steps=2,
        eval_steps=2,
        logging_steps=1,
        precision="bf16",
        eval_examples=8,
    )
    results = train_reader(train, tmp_path / "reader", config, eval_path=train, show_progress=False)
    assert all(math.isfinite(h["loss"]) for h in results["log_history"] if "loss" in h)


def test_train_reader_adds_retrieved_answerless_paragraphs_of_other_articles(tmp_path, tiny_qa_base):
    first, second = make_squad(tmp_path / "a.json", 12, seed=5), make_squad(tmp_path / "b.json", 12, seed=6)
    articles = json.loads(first.read_text())["data"] + json.loads(second.read_text())["data"]
    for paragraph in articles[1]["paragraphs"]:  # question ids unique across the two
        for qa in paragraph["qas"]:
            qa["id"] = "b-" + qa["id"]
    train = tmp_path / "train.json"
    train.write_text(json.dumps({"version": "1.1", "data": articles}))
    config = tiny_config(tiny_qa_base, max_steps=1, eval_steps=1, retrieved_negatives_per_question=1.0)
    results = train_reader(train, tmp_path / "reader", config, eval_path=first, show_progress=False)
    # every question names a person who appears in the other article's paragraphs, with other colours
    assert 0 < results["retrieved_answerless_paragraphs"] == results["answerless_paragraphs"]
    assert results["train_windows"] >= results["train_questions"] + results["retrieved_answerless_paragraphs"]
    assert "retrieved by BM25 from other articles" in (tmp_path / "reader" / "README.md").read_text()


def _example(qid, title, context, answer):
    from rag_qa.data import QAExample

    start = context.find(answer)
    return QAExample(qid, title, context, "q?", (answer,) if answer else (), (start,) if answer else (), not answer)


def test_answerless_paragraphs_come_from_the_same_article_and_hold_no_answer():
    from rag_qa.training.reader import answerless_examples

    examples = [
        _example("a1", "A", "The capital is Paris.", "Paris"),
        _example("a2", "A", "Paris has many bridges.", "bridges"),
        _example("a3", "A", "Rivers flow to the sea.", "sea"),
        _example("b1", "B", "Bees make honey.", "honey"),
    ]
    negatives = answerless_examples(examples, per_question=2, seed=0)
    by_question = {}
    for n in negatives:
        assert n.is_impossible and not n.answer_texts
        by_question.setdefault(n.qid.rsplit("-neg", 1)[0], []).append(n.context)
    # a1's answer "Paris" is also in a2's paragraph, so only a3's paragraph is answerless for it
    assert by_question["a1"] == ["Rivers flow to the sea."]
    assert sorted(by_question["a3"]) == ["Paris has many bridges.", "The capital is Paris."]
    assert "b1" not in by_question  # its article has no other paragraph
    assert len(answerless_examples(examples, per_question=0.5, seed=0)) < len(negatives)


def test_data_offset_takes_consecutive_slices_of_one_shuffle():
    from rag_qa.training.reader import choose_training_questions

    examples = [_example(f"q{i}", "T", f"Text {i}.", f"{i}") for i in range(50)]
    first = choose_training_questions(examples, ReaderTrainConfig(data_offset=0, max_train_examples=20))
    second = choose_training_questions(examples, ReaderTrainConfig(data_offset=20, max_train_examples=20))
    rest = choose_training_questions(examples, ReaderTrainConfig(data_offset=40, max_train_examples=20))
    ids = [e.qid for e in first + second + rest]
    assert sorted(ids) == sorted(e.qid for e in examples) and len(set(ids)) == 50


@pytest.mark.slow
@pytest.mark.parametrize("shared", [False, True], ids=["per-window", "shared-normalization"])
def test_training_stopped_by_sigterm_resumes_to_the_same_weights(tmp_path, tiny_qa_base, monkeypatch, shared):
    """SIGTERM saves a checkpoint and stops; --resume continues the same schedule to the same weights
    (with shared normalisation too, whose batches hold whole questions)."""
    import signal

    from safetensors.numpy import load_file

    from rag_qa.training import reader as training

    train = make_squad(tmp_path / "train.json", 96, seed=4)
    config = tiny_config(
        tiny_qa_base,
        max_steps=8,
        eval_steps=100,
        logging_steps=1,
        eval_examples=8,
        negatives_per_question=0.5,
        shared_normalization=shared,
    )
    straight = train_reader(train, tmp_path / "straight", config, eval_path=train, show_progress=False)
    assert straight["steps"] == 8

    real_callback = training._StopOnSignal.callback

    def callback(self):
        cb = real_callback(self)

        def on_step_begin(args, state, control, **kwargs):
            if state.global_step == 3:  # a SIGTERM arrives during the 4th step
                signal.raise_signal(signal.SIGTERM)

        cb.on_step_begin = on_step_begin
        return cb

    monkeypatch.setattr(training._StopOnSignal, "callback", callback)
    stopped = train_reader(train, tmp_path / "resumed", config, eval_path=train, show_progress=False)
    assert stopped["interrupted"] and stopped["steps"] == 4
    assert not (tmp_path / "resumed" / "model.safetensors").exists()
    monkeypatch.setattr(training._StopOnSignal, "callback", real_callback)
    resumed = train_reader(train, tmp_path / "resumed", config, eval_path=train, resume=True, show_progress=False)
    assert resumed["steps"] == 8
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    assert max(float(abs(a[k] - b[k]).max()) for k in a) < 1e-6


def test_retrieved_answerless_paragraphs_are_bm25_hits_of_other_articles_that_hold_no_answer():
    from rag_qa.retrieval.negatives import retrieved_answerless_examples

    def ask(qid, title, context, question, answer):
        e = _example(qid, title, context, answer)
        return replace(e, question=question)

    examples = [
        ask(
            "a1",
            "Volcanoes",
            "Mount Etna is a volcano in Sicily that erupts often.",
            "Where is the volcano Etna?",
            "Sicily",
        ),
        ask(
            "b1",
            "Islands",
            "Sicily is an island; its volcano draws many visitors.",
            "What does the volcano draw?",
            "visitors",
        ),
        ask("c1", "Lava", "Volcano lava from Etna cools into basalt rock.", "What does lava cool into?", "basalt"),
        ask("d1", "Bees", "Bees make honey from nectar.", "What do bees make?", "honey"),
    ]
    negatives = retrieved_answerless_examples(examples, per_question=2, seed=0)
    by_question = {}
    for n in negatives:
        assert n.is_impossible and not n.answer_texts
        by_question.setdefault(n.qid.split("-bm25neg")[0], []).append(n.context)
    # a1: b1's paragraph mentions Sicily (its answer), so only the lava paragraph is answerless for it
    assert by_question["a1"] == ["Volcano lava from Etna cools into basalt rock."]
    assert "Bees make honey from nectar." not in by_question["a1"]  # shares no word with the question
    for qid, contexts in by_question.items():
        own = next(e for e in examples if e.qid == qid)
        assert own.context not in contexts and all(own.answer_texts[0].lower() not in c.lower() for c in contexts)
    assert "d1" not in by_question  # no other paragraph matches its words
    assert retrieved_answerless_examples(examples, per_question=0, seed=0) == []
    # twelve paragraphs of its own article match the question better than the other article's one,
    # yet they take no place among the top hits: the other article's paragraph is still found
    own = [ask("v0", "Volcanoes", "The Etna volcano erupts in Sicily.", "Which volcano erupts?", "Etna")]
    own += [ask(f"w{i}", "Volcanoes", f"The Etna volcano erupts again, year {i}.", "When?", f"{i}") for i in range(12)]
    other = ask("x1", "Rocks", "Basalt comes from a volcano.", "Where is basalt from?", "a volcano")
    found = retrieved_answerless_examples(own[:1], per_question=1, seed=0, pool=own + [other], depth=10)
    assert [n.context for n in found] == ["Basalt comes from a volcano."]


def test_frozen_word_embeddings_stay_as_they_were_while_the_rest_trains(tmp_path, tiny_qa_base):
    from safetensors.numpy import load_file

    train = make_squad(tmp_path / "train.json", 24, seed=8)
    config = tiny_config(tiny_qa_base, max_steps=2, eval_steps=2, learning_rate=1e-3, freeze_word_embeddings=True)
    train_reader(train, tmp_path / "reader", config, eval_path=train, show_progress=False)
    before = load_file(str(tiny_qa_base / "model.safetensors"))
    after = load_file(str(tmp_path / "reader" / "model.safetensors"))
    word = next(k for k in after if k.endswith("word_embeddings.weight"))
    assert (after[word] == before[word]).all()
    assert any((after[k] != before[k]).any() for k in after if k.startswith("qa_outputs"))


def test_shared_normalization_scores_the_answer_against_every_window_of_its_question():
    import torch

    from rag_qa.training.reader import shared_normalization_loss

    # question 0: its paragraph's window (answer at token 2) and an answerless window; question 1: one window
    start = torch.zeros(3, 5)
    start[0, 2] = 3.0
    end = start.clone()
    positions = torch.tensor([2, 0, 2])
    groups = torch.tensor([0, 0, 1])
    mask = torch.ones(3, 5, dtype=torch.long)
    mask[2, 4] = 0  # padding of the last window

    def loss(start_logits):
        return shared_normalization_loss(start_logits, end, positions, positions, groups, mask).item()

    # one softmax over the 8 non-[CLS] tokens of question 0's two windows, and over question 1's 3
    q0 = -math.log(math.exp(3) / (math.exp(3) + 7))
    q1 = -math.log(1 / 3)
    assert loss(start) == pytest.approx((q0 + q1) / 2, rel=1e-6)

    # a high score in the answerless window raises the loss; per window it would not have counted
    rival = start.clone()
    rival[1, 3] = 3.0
    q0_rival = -math.log(math.exp(3) / (2 * math.exp(3) + 6))
    assert loss(rival) == pytest.approx((q0_rival + q0 + 2 * q1) / 4, rel=1e-6)  # the end logits did not change
    # [CLS] (the no-answer, trained per window) and padding are not in the softmax
    cls = start.clone()
    cls[:, 0] = 9.0
    cls[2, 4] = 9.0
    assert loss(cls) == pytest.approx(loss(start), rel=1e-6)
    # no question with its answer in the batch: nothing to add
    none = shared_normalization_loss(start, end, torch.zeros(3, dtype=torch.long), positions * 0, groups, mask)
    assert none.item() == 0.0


def test_group_sampler_keeps_each_question_whole_and_reshuffles_per_epoch():
    import numpy as np

    from rag_qa.training.reader import GroupSampler

    groups = np.repeat(np.arange(40), np.arange(40) % 3 + 1)  # 1 to 3 windows a question
    rng = np.random.default_rng(0)
    rng.shuffle(groups)
    lengths = rng.integers(20, 64, size=len(groups))
    sampler = GroupSampler(groups, lengths, batch_size=4, seed=1)
    first = list(sampler)
    assert sorted(first) == list(range(len(groups))) == list(range(len(sampler)))
    seen = groups[first]
    runs = seen[np.r_[True, seen[1:] != seen[:-1]]]
    assert len(runs) == len(set(runs)) == 40  # each question's windows in one run
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first


def test_train_reader_with_shared_normalization(tmp_path, tiny_qa_base):
    from rag_qa.data import read_squad
    from rag_qa.training.reader import question_groups

    train = make_squad(tmp_path / "train.json", 64, seed=7)
    examples = read_squad(train)
    from rag_qa.data import answerless_examples

    negatives = answerless_examples(examples, 1.0, seed=0)
    groups = question_groups(examples, negatives)
    assert [groups[len(examples) + i] for i in range(len(negatives))] == [
        next(k for k, e in enumerate(examples) if e.qid == n.qid.rsplit("-", 1)[0]) for n in negatives
    ]

    config = learning_config(tiny_qa_base, negatives_per_question=1.0, shared_normalization=True)
    results = train_reader(train, tmp_path / "reader", config, eval_path=train, show_progress=False)
    losses = [h["loss"] for h in results["log_history"] if "loss" in h]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
    assert results["answerless_paragraphs"] > 0 and results["config"]["shared_normalization"]
    assert "shared normalisation" in (tmp_path / "reader" / "README.md").read_text()


def test_train_reader_cli_stopped_by_a_signal_says_how_to_resume(tmp_path, monkeypatch):
    """A stop on SIGTERM or Ctrl-C ends with one line on how to continue and a non-zero exit, not a traceback."""
    from click.testing import CliRunner

    from rag_qa.cli import cli
    from rag_qa.training import reader as training

    checkpoints = str(tmp_path / "out" / "checkpoints")
    monkeypatch.setattr(
        training, "train_reader", lambda *a, **k: {"interrupted": True, "steps": 573, "checkpoints": checkpoints}
    )
    train = make_squad(tmp_path / "train.json", 4, seed=1)
    result = CliRunner().invoke(cli, ["train-reader", "--train", str(train), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert "stopped at step 573" in result.output and checkpoints in result.output and "--resume" in result.output
    assert "Traceback" not in result.output and "Reader saved" not in result.output


class _TwoSeparatorTokenizer:
    """A teacher's tokenizer in the MPNet frame (<s> q </s></s> c </s>) over the same word pieces
    as the student's, at other ids."""

    def __init__(self, student, shift=7):
        self.vocab = {token: i + shift for token, i in student.get_vocab().items()}
        self.cls_token_id, self.sep_token_id, self.pad_token_id, self.unk_token_id = 0, 2, 1, 3

    def get_vocab(self):
        return dict(self.vocab)

    def __call__(self, question, context):
        return {"input_ids": [0, 50, 2, 2, 60, 2]}


def test_teacher_frame_maps_word_pieces_and_adds_the_second_separator(tiny_qa_base):
    import torch
    from transformers import AutoTokenizer

    from rag_qa.training.reader import TeacherFrame

    student = AutoTokenizer.from_pretrained(str(tiny_qa_base), local_files_only=True)
    pairs = [("Who likes red?", "Anna likes the colour red."), ("Which colour does Boris like best?", "Blue.")]
    enc = student([q for q, _ in pairs], [c for _, c in pairs], padding="longest", pad_to_multiple_of=8)
    ids, mask = torch.as_tensor(enc["input_ids"]), torch.as_tensor(enc["attention_mask"])
    width = ids.shape[1]

    same = TeacherFrame(student, student)
    t_ids, t_mask, positions = same.inputs(ids, mask)
    assert not same.double_sep and torch.equal(t_ids, ids) and torch.equal(t_mask, mask)
    assert torch.equal(positions, torch.arange(width).expand(2, width))

    frame = TeacherFrame(student, _TwoSeparatorTokenizer(student, shift=7))
    t_ids, t_mask, positions = frame.inputs(ids, mask)
    assert frame.double_sep and t_ids.shape == t_mask.shape == (2, width + 1)
    for row, (question, context) in enumerate(pairs):  # each row framed as <s> q </s></s> c </s>, then padding
        q = [i + 7 for i in student(question, add_special_tokens=False)["input_ids"]]
        c = [i + 7 for i in student(context, add_special_tokens=False)["input_ids"]]
        framed = [0, *q, 2, 2, *c, 2]
        assert t_ids[row].tolist() == framed + [1] * (width + 1 - len(framed))
        assert t_mask[row].tolist() == [1] * len(framed) + [0] * (width + 1 - len(framed))
        sep = len(q) + 1  # the student's first [SEP]
        assert positions[row].tolist() == list(range(sep + 1)) + list(range(sep + 2, width + 1))


def test_teacher_frame_refuses_a_teacher_with_other_word_pieces(tiny_qa_base):
    from transformers import AutoTokenizer

    from rag_qa.errors import InputError
    from rag_qa.training.reader import TeacherFrame

    student = AutoTokenizer.from_pretrained(str(tiny_qa_base), local_files_only=True)
    other = _TwoSeparatorTokenizer(student)
    other.vocab = {f"▁{t}": i for t, i in other.vocab.items()}  # a sentencepiece-style vocabulary
    with pytest.raises(InputError, match="word pieces"):
        TeacherFrame(student, other)


def test_distillation_loss_is_zero_for_the_teacher_and_ignores_padding():
    import torch

    from rag_qa.training.reader import distillation_loss

    torch.manual_seed(0)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    start, end = torch.randn(2, 6), torch.randn(2, 6)
    assert distillation_loss(start, end, start, end, mask, 2.0).abs() < 1e-6
    other = distillation_loss(torch.randn(2, 6), torch.randn(2, 6), start, end, mask, 2.0)
    assert other > 0.01
    padded = start.clone()
    padded[0, 4:] = 50.0  # scores on padding count for nothing
    assert distillation_loss(padded, end, start, end, mask, 2.0).abs() < 1e-6

    # on unpadded windows: KL(teacher || student) at the temperature, times its square, start and end averaged
    full = torch.ones(2, 6, dtype=torch.long)
    s_start, s_end, t_start, t_end = (torch.randn(2, 6) for _ in range(4))

    def kl(student, teacher, t):
        return torch.nn.functional.kl_div(
            torch.log_softmax(student / t, -1),
            torch.log_softmax(teacher / t, -1),
            log_target=True,
            reduction="batchmean",
        )

    for t in (1.0, 3.0):
        expected = (kl(s_start, t_start, t) + kl(s_end, t_end, t)) / 2 * t**2
        assert torch.allclose(distillation_loss(s_start, s_end, t_start, t_end, full, t), expected, atol=1e-5)
    assert not torch.allclose(  # the direction matters
        distillation_loss(s_start, s_end, t_start, t_end, full, 1.0),
        distillation_loss(t_start, t_end, s_start, s_end, full, 1.0),
    )


def test_training_with_a_teacher_learns_and_the_card_names_it(tmp_path, tiny_qa_base, monkeypatch):
    from rag_qa.training import reader as training

    train = make_squad(tmp_path / "train.json", 48, seed=3)
    teacher_config = tiny_config(tiny_qa_base, learning_rate=2e-3, epochs=3, eval_steps=12, warmup_ratio=0.0)
    train_reader(train, tmp_path / "teacher", teacher_config, eval_path=train, show_progress=False)
    config = learning_config(tiny_qa_base, teacher=str(tmp_path / "teacher"), distill_weight=0.7)
    soft, real = [], training.distillation_loss
    monkeypatch.setattr(training, "distillation_loss", lambda *a: soft.append(float(real(*a).detach())) or real(*a))
    results = train_reader(train, tmp_path / "student", config, eval_path=train, show_progress=False)
    assert len(soft) == results["steps"] and all(x > 0 for x in soft)  # the teacher's scores on every step
    losses = [h["loss"] for h in results["log_history"] if "loss" in h]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
    assert results["config"]["teacher"] == str(tmp_path / "teacher")
    assert "distilled from `teacher`: weight 0.7" in (tmp_path / "student" / "README.md").read_text()


def test_a_teacher_that_is_not_a_trained_reader_is_refused(tmp_path, tiny_qa_base, tiny_encoder):
    from rag_qa.errors import InputError

    train = make_squad(tmp_path / "train.json", 8, seed=1)
    config = tiny_config(tiny_qa_base, max_steps=1, teacher=str(tiny_encoder))
    with pytest.raises(InputError, match="not a trained reader"):
        train_reader(train, tmp_path / "student", config, eval_path=train, show_progress=False)


def test_a_teacher_that_cannot_read_the_windows_is_refused(tmp_path, tiny_qa_base):
    from rag_qa.errors import InputError

    train = make_squad(tmp_path / "train.json", 8, seed=1)
    missing = tiny_config(tiny_qa_base, max_steps=1, teacher=str(tmp_path / "nowhere"))
    with pytest.raises(InputError, match="set teacher to a trained reader's directory"):
        train_reader(train, tmp_path / "a", missing, eval_path=train, show_progress=False)
    too_long = tiny_config(tiny_qa_base, max_steps=1, teacher=str(tiny_qa_base), max_seq_length=520, doc_stride=128)
    with pytest.raises(InputError, match="the teacher reads at most 512 tokens"):
        train_reader(train, tmp_path / "b", too_long, eval_path=train, show_progress=False)
