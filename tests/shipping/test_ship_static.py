"""The shipping tool stays out of the image: the image's code never imports boto3 and its build context never
holds shipping/. (boto3 itself is in the image since script mode: the training toolkit fetches source from S3.)"""

from __future__ import annotations

import re

from aws_standin import REPO


def test_image_code_never_imports_boto3():
    offenders = [
        str(path.relative_to(REPO))
        for path in [*(REPO / "container").rglob("*.py"), REPO / "train", REPO / "serve"]
        if re.search(r"^\s*(import|from)\s+(boto3|botocore|shipping)\b", path.read_text(), re.MULTILINE)
    ]
    assert offenders == []


def test_build_context_leaves_shipping_out():
    allowed = [line[1:] for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")]
    assert not any(entry.startswith("shipping") for entry in allowed), allowed
