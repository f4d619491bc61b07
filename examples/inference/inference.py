"""An inference script in the SageMaker inference toolkits' style: the built-in classifier (model_fn and
predict_fn left out, so dynamic batching stays), with this team's request and answer formats.

Request:  {"reviews": ["text", ...]}            (application/json)
Answer:   {"answers": [{"label": ..., "score": ...}, ...]}, "unsure" below MIN_SCORE
"""

import json

MIN_SCORE = 0.5  # read-only after import: every request thread of the worker shares the module's globals


def input_fn(body, content_type):
    """body is a str for application/json and text/csv, bytes otherwise. What this returns goes to the built-in
    predict_fn, which takes a JSON request's value: a text, a list of texts, or {"inputs": ..., "parameters": ...}."""
    if not content_type.startswith("application/json"):
        raise ValueError(f"send application/json, not {content_type}")  # a ValueError is the caller's 400
    request = json.loads(body)  # malformed JSON raises a ValueError too
    reviews = request.get("reviews") if isinstance(request, dict) else None
    if not isinstance(reviews, list) or not reviews:
        raise ValueError('send {"reviews": ["text", ...]}')
    return {"inputs": [str(review) for review in reviews]}


def output_fn(prediction, accept):
    """prediction: the built-in predict_fn's answer, one {"label", "score"} per review, in order."""
    answers = [
        {"label": p["label"] if p["score"] >= MIN_SCORE else "unsure", "score": round(p["score"], 4)}
        for p in prediction
    ]
    return json.dumps({"answers": answers}), "application/json"
