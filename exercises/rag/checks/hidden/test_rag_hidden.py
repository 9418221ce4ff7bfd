"""Hidden checks of rag: retrieval quality and grounded answers on cloze questions the student never sees.

Each question is a corpus sentence with its one year blanked out; its relevant passages are the ones that
contain the whole sentence.  Recall@k and MRR are computed here, from the passage ids the student's
retriever returns; groundedness is checked against the passages' TRUSTED text.
"""

from __future__ import annotations

import pytest

from grader.testing import expect_type, record


def _run(retriever, questions, rg, k):
    return {q["id"]: [pid for pid, _ in rg.expect_hits(retriever.search(q["question"], k), k, "search(question, k)")]
            for q in questions}


def _rag(student, rg, encoder_dir, lm_dir, passages, targets):
    """One RAG per grading (it indexes the corpus): the dense retrieval and the grounding checks share it."""
    return rg.shared_object(student, "RAG", lambda: student.new(
        "RAG", encoder_dir, lm_dir, passages, k=int(targets["answer_k"]), max_new_tokens=8))


def _check_retrieval(reference, run, questions, targets, prefix, kind):
    qrels = {q["id"]: q["relevant"] for q in questions}
    recall = reference.retrieval_metrics(run, qrels, int(targets["recall_k"]))["recall"]
    mrr = reference.retrieval_metrics(run, qrels, int(targets["mrr_k"]))["mrr"]
    record(f"{prefix}recall_at_{targets['recall_k']}", recall)
    record(f"{prefix}mrr_at_{targets['mrr_k']}", mrr)
    want_recall, want_mrr = float(targets[f"{prefix}min_recall"]), float(targets[f"{prefix}min_mrr"])
    assert recall >= want_recall and mrr >= want_mrr, (
        f"{kind} retrieval on hidden questions: recall@{targets['recall_k']} {recall:.2f} (target {want_recall:.2f}),"
        f" MRR@{targets['mrr_k']} {mrr:.2f} (target {want_mrr:.2f}): index every passage, score the query "
        "against all of them and return the best first")


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
@pytest.mark.timeout_s(360)
def test_dense_retrieval_on_hidden_questions(student, reference, rg, encoder_dir, lm_dir, passages, questions,
                                             targets):
    """the dense retriever finds the passage a hidden question was made from: recall@k and MRR above targets"""
    rag = _rag(student, rg, encoder_dir, lm_dir, passages, targets)
    run = _run(rag, questions, rg, int(targets["mrr_k"]))
    _check_retrieval(reference, run, questions, targets, "", "dense")


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
@pytest.mark.timeout_s(120)
def test_bm25_retrieval_on_hidden_questions(student, reference, rg, passages, questions, targets):
    """BM25 finds the passage a hidden question was made from: recall@k and MRR above targets"""
    retriever = student.new("BM25Retriever")
    retriever.index(passages)
    run = _run(retriever, questions, rg, int(targets["mrr_k"]))
    _check_retrieval(reference, run, questions, targets, "bm25_", "BM25")


def _expect_answer(value, k, text):
    expect_type(value, dict, "RAG.answer(question)")
    for key, kind in (("answer", str), ("raw", str), ("prompt", str), ("passages", list)):
        assert key in value, f"RAG.answer should return a dict with answer, raw, passages and prompt: {list(value)}"
        expect_type(value[key], kind, f"RAG.answer(question)[{key!r}]")
    assert len(value["passages"]) == k, f"RAG.answer used {len(value['passages'])} passages, expected k={k}"
    unknown = [pid for pid in value["passages"] if pid not in text]
    assert not unknown, f"RAG.answer returned unknown passage ids {unknown[:2]}: return the ids of the passages used"
    return value


def _greedy(lm, tokenizer, prompt, max_new_tokens):
    import torch

    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = lm.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
@pytest.mark.timeout_s(360)
def test_answers_grounded(student, reference, rg, encoder_dir, lm_dir, passages, questions, targets):
    """answers to hidden questions come from the model on a prompt of the retrieved passages and are grounded in them"""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    k, n = int(targets["answer_k"]), int(targets["answer_questions"])
    rag = _rag(student, rg, encoder_dir, lm_dir, passages, targets)
    text = {p["id"]: p["text"] for p in passages}
    tokenizer = AutoTokenizer.from_pretrained(lm_dir)
    lm = AutoModelForCausalLM.from_pretrained(lm_dir).eval()
    before, after = rg.template_ends(lm_dir)
    grounded = correct = 0
    for i, q in enumerate(questions[:n]):
        result = _expect_answer(rag.answer(q["question"]), k, text)
        used = [text[pid] for pid in result["passages"]]
        assert result["prompt"].startswith(before) and result["prompt"].endswith(after), (
            "the prompt RAG.answer returned is not one user message rendered with the chat template and its "
            "generation prompt (apply_chat_template(..., add_generation_prompt=True))")
        problem = rg.passages_in_order(result["prompt"], used, q["question"])
        assert problem is None, f"{problem} (in the prompt RAG.answer returned)"
        rest = result["prompt"]
        for passage in used:
            rest = rest.replace(passage, "")
        assert q["answer"] not in rest, (
            "the prompt holds the answer outside the retrieved passages: build it from the question and the "
            "retrieved passages only")
        if i < 3:  # the answer is the model's greedy output on that very prompt
            raw = _greedy(lm, tokenizer, result["prompt"], 8)
            assert reference.parse_answer(result["raw"]) == result["answer"], (
                "the answer is not parsed from the output as the stub says: the first four-digit number, else the "
                "first line, stripped")
            assert reference.parse_answer(raw) == result["answer"], (
                "RAG.answer's answer is not what the model says, greedily, on the prompt it returned: generate from "
                "that prompt (tokenised without adding special tokens) with do_sample=False and max_new_tokens")
        grounded += any(rg.contains(passage, result["answer"]) for passage in used)
        correct += result["answer"] == q["answer"]
    rate = grounded / n
    record("grounded_rate", rate)
    record("exact_match", correct / n)
    target = float(targets["min_grounded"])
    assert rate >= target, (
        f"only {rate:.0%} of the answers appear in a retrieved passage (target {target:.0%}): the answer should "
        "be a span of the context the model was given")
