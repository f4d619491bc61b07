"""The inference server behind `serve`: gunicorn + Flask, dynamic batching, SageMaker's /ping and /invocations.

Modules: settings (knobs, process plan), codecs (content types), errors (status + JSON body), batcher
(MicroBatcher), outputs (scores to answers), modelinfo (model directory facts), health (loader, readiness),
inference (the object the routes call), app (Flask factory), gunicorn_conf (config + hooks), cli (`serve`), and
predictor, the only one that imports torch, loaded lazily in each worker.
"""
