"""The process that `train` starts in script mode (see script_mode.py): the SageMaker training toolkit's trainer,
after three settings the toolkit does not make itself.

Run as a file by the image's Python, in a process group of its own; it imports only the toolkit.
"""

import logging
import os
import sys
from pathlib import Path

# The toolkit's own format, but on stdout: stderr then carries only the user's program and pip, so its last lines
# are what went wrong, and `train` puts them in the failure file.
LOG_FORMAT = "%(asctime)s %(name)-12s %(levelname)-8s %(message)s"


def main() -> None:
    # Run as a file, Python put this directory first on sys.path, and the toolkit exports sys.path to the user's
    # script as PYTHONPATH: `import data` there must not find textclf's modules.
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        del sys.path[0]
    logging.basicConfig(stream=sys.stdout, format=LOG_FORMAT, level=logging.INFO)  # the toolkit's call is then a no-op
    from sagemaker_training import environment, files, trainer

    env = environment.Environment()
    # Fetch the source directory now (the toolkit's own call later finds it in place and does nothing), so that its
    # wheels/ is known before pip runs: with one, requirements.txt installs from it alone (network isolation).
    try:
        files.download_and_extract(uri=env.module_dir, path=environment.code_dir)
    except Exception:  # noqa: BLE001 -- the trainer meets it again, and reports it as the job's failure
        pass
    wheels = Path(environment.code_dir) / "wheels"
    if wheels.is_dir():
        os.environ.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels))
    os.environ["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"  # no request to PyPI that an isolated job would wait on
    if len(env.hosts) == 1:
        # The toolkit waits up to 15 minutes for every host name to resolve, its own included: a cluster's need,
        # and a silent hang for `docker run` without --hostname. One host has no one to wait for.
        os.environ["SM_STUDIO_LOCAL_MODE"] = "true"
    trainer.train()  # exits: 0, or 1 with /opt/ml/output/failure written


if __name__ == "__main__":
    main()
