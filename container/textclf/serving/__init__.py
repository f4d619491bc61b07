"""The inference server behind `serve`: gunicorn + Flask, dynamic batching, SageMaker's /ping and /invocations.

The HTTP side: cli (`serve`), gunicorn_conf (config + hooks), app (Flask factory), http_errors (the status of each
error), codecs (content types), health (loader, readiness). Below it, with no HTTP: inputs (decoded request
types), errors (what can go wrong), inference (the object the routes call), outputs (scores to answers), batcher
(MicroBatcher), modelinfo (model directory facts), settings (knobs, process plan), user_code and handlers (a
team's inference.py and its hooks, chained with the built-in functions), and predictor, the only module that
imports torch, loaded lazily in each worker.
"""
