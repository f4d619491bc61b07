"""The serving baseline: what the tutorials ship, Flask under gunicorn sync workers, one `pipeline` call per request.

    BASELINE_MODEL_DIR=DIR gunicorn -w WORKERS -b 127.0.0.1:PORT --chdir bench baseline_server:app
Each worker loads the model at import and answers `/ping` and `/invocations` ({"inputs": "text"}) by calling
`pipeline("text-classification")` on the request's inputs. BASELINE_TORCH_THREADS sets torch's threads per worker
(the benchmark gives the baseline the same core budget as ours: workers x threads = the cores).
"""

from __future__ import annotations

import os

import torch
from flask import Flask, jsonify, request
from transformers import pipeline

if os.environ.get("BASELINE_TORCH_THREADS"):
    torch.set_num_threads(int(os.environ["BASELINE_TORCH_THREADS"]))

MODEL_DIR = os.environ["BASELINE_MODEL_DIR"]
MAX_LENGTH = int(os.environ.get("BASELINE_MAX_LENGTH", "128"))
classifier = pipeline(
    "text-classification", model=MODEL_DIR, tokenizer=MODEL_DIR, device=0 if torch.cuda.is_available() else "cpu"
)
app = Flask(__name__)


@app.get("/ping")
def ping():
    return jsonify(status="ok")


@app.post("/invocations")
def invocations():
    inputs = request.get_json(force=True)["inputs"]
    return jsonify(classifier(inputs, truncation=True, max_length=MAX_LENGTH))
