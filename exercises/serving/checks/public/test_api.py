"""The HTTP API: health, predictions equal to the model, 422 on invalid bodies, 413 over the limits, batching."""

import pytest
from helpers import expect_answer, expect_error, expect_prediction, same_answer

TEXTS = ["the film was good", "a very boring plot", "Great actors, awful movie!", "not bad", "x", "The PLOT is"]

@pytest.mark.points(1)
def test_health_answers_after_start(served):
    """GET /health answers 200 {"status": "ok"} as soon as ModelServer() returns"""
    reply = served.get("/health")
    if reply.status != 200 or reply.body != {"status": "ok"}:
        raise AssertionError(f"GET /health answered {reply.describe()}, expected 200 {{\"status\": \"ok\"}}")


@pytest.mark.points(2)
def test_predict_matches_model(served, model_files):
    """POST /predict answers the model's label and softmax scores, in the declared schema"""
    for text in TEXTS:
        reply = served.post("/predict", {"text": text})
        expect_prediction(reply, model_files.model, text, f"POST /predict {{'text': {text!r}}}")


@pytest.mark.points(2)
def test_invalid_bodies_get_422(served):
    """Bodies that break the schema get 422 with a reason, on both endpoints"""
    advice = "declare the body as a pydantic model (text: str with min_length=1; texts: list[str], not empty)"
    cases = [
        ("/predict", {}, None, "a body without 'text'"),
        ("/predict", {"text": 17}, None, "a number as text"),
        ("/predict", {"text": None}, None, "null as text"),
        ("/predict", {"text": ""}, None, "an empty text"),
        ("/predict", ["the film"], None, "a JSON list instead of an object"),
        ("/predict", None, b'{"text": "unterminated', "a body that is not JSON"),
        ("/predict_batch", {"texts": "the film"}, None, "a string instead of a list of texts"),
        ("/predict_batch", {"texts": []}, None, "an empty batch"),
        ("/predict_batch", {"texts": ["good", 3]}, None, "a batch holding a number"),
        ("/predict_batch", {"texts": ["good", ""]}, None, "a batch holding an empty text"),
    ]
    for url, payload, raw, why in cases:
        reply = served.post(url, payload, raw=raw)
        expect_error(reply, 422, f"POST {url} with {why}", advice)


@pytest.mark.points(2)
def test_limits_get_413(served, model_files, limits):
    """Over max_text_chars characters or max_batch texts: 413 with a reason; exactly at the limit: 200"""
    n, b = limits["max_text_chars"], limits["max_batch"]
    advice = ("check the limits in the endpoint and raise HTTPException(413, detail=...); do not declare them in "
              "the pydantic model (that answers 422)")
    expect_error(served.post("/predict", {"text": "a" * (n + 1)}), 413,
                 f"POST /predict with a text of {n + 1} characters (limit {n})", advice)
    for text, why in (("a" * n, f"exactly {n} characters"), ("é" * n, f"{n} characters of 2 UTF-8 bytes each")):
        reply = served.post("/predict", {"text": text})
        if reply.status != 200:
            raise AssertionError(f"POST /predict with a text of {why} answered {reply.describe()}, expected 200: "
                                 "the limit is on characters (len(text)), not bytes, and the limit itself is allowed")
        expect_answer(reply.body, model_files.model, text, f"POST /predict with {why}")
    expect_error(served.post("/predict_batch", {"texts": ["good"] * (b + 1)}), 413,
                 f"POST /predict_batch with {b + 1} texts (limit {b})", advice)
    expect_error(served.post("/predict_batch", {"texts": ["good", "b" * (n + 1)]}), 413,
                 f"POST /predict_batch with a text of {n + 1} characters", advice)
    reply = served.post("/predict_batch", {"texts": ["good"] * b})
    if reply.status != 200:
        raise AssertionError(f"POST /predict_batch with exactly {b} texts answered {reply.describe()}, expected "
                             "200: a batch of max_batch texts is allowed")


@pytest.mark.points(2)
def test_batch_equals_single(served, model_files):
    """POST /predict_batch answers, in order, what /predict answers for each text (duplicates included)"""
    texts = ["awful", "the film was good", "awful", "   ", "¿¡!?", "NOT very good", "café über alles"]
    reply = served.post("/predict_batch", {"texts": texts})
    if reply.status != 200:
        raise AssertionError(f"POST /predict_batch answered {reply.describe()}, expected 200")
    body = reply.body
    if not isinstance(body, dict) or set(body) != {"predictions"} or not isinstance(body["predictions"], list):
        raise AssertionError(f"POST /predict_batch answered {body!r:.200}: expected {{\"predictions\": [...]}}")
    if len(body["predictions"]) != len(texts):
        raise AssertionError(f"POST /predict_batch with {len(texts)} texts answered {len(body['predictions'])} "
                             "predictions: one per text, in order, duplicates included")
    for i, (text, answer) in enumerate(zip(texts, body["predictions"], strict=True)):
        single = expect_prediction(served.post("/predict", {"text": text}), model_files.model, text,
                                   f"POST /predict {{'text': {text!r}}}")
        expect_answer(answer, model_files.model, text, f"prediction {i} of the batch ({text!r})")
        if not same_answer(answer, single):
            raise AssertionError(f"prediction {i} of the batch ({text!r}) is {answer!r:.150}, but /predict answers "
                                 f"{single!r:.150}: the batch must answer what /predict answers, in the texts' order")


def schema_of(spec, node):
    """Follow $ref (and a single allOf/anyOf wrapper) to the schema object."""
    for _ in range(10):
        if "$ref" in node:
            ref = node["$ref"].removeprefix("#/")
            node = spec
            for part in ref.split("/"):
                node = node.get(part, {})
        elif len(node.get("allOf", [])) == 1:
            node = node["allOf"][0]
        else:
            return node
    return node


@pytest.mark.points(1)
def test_openapi_declares_schemas(served):
    """/openapi.json declares the request and response bodies of /predict and /predict_batch"""
    reply = served.get("/openapi.json")
    if reply.status != 200 or not isinstance(reply.body, dict):
        raise AssertionError(f"GET /openapi.json answered {reply.describe()}: serve a FastAPI app (it publishes "
                             "the schema there)")
    spec = reply.body
    expected = {"/predict": ("text", "string", ("label", "scores")),
                "/predict_batch": ("texts", "array", ("predictions",))}
    for path, (field, kind, out_fields) in expected.items():
        post = spec.get("paths", {}).get(path, {}).get("post")
        if not post:
            raise AssertionError(f"/openapi.json has no POST {path}")
        body = schema_of(spec, post.get("requestBody", {}).get("content", {}).get("application/json", {})
                         .get("schema", {}))
        prop = schema_of(spec, body.get("properties", {}).get(field, {}))
        if prop.get("type") != kind or field not in body.get("required", []):
            raise AssertionError(f"POST {path}'s request body should declare a required {kind} field {field!r}: "
                                 "take a pydantic model as the endpoint's parameter, not a dict or the raw Request")
        ok = schema_of(spec, post.get("responses", {}).get("200", {}).get("content", {})
                       .get("application/json", {}).get("schema", {}))
        missing = [f for f in out_fields if f not in ok.get("properties", {})]
        if missing:
            raise AssertionError(f"POST {path}'s 200 response should declare {', '.join(map(repr, missing))}: set "
                                 "response_model= to a pydantic model")
