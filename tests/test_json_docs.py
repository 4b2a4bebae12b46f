"""JSON files whose keys the docs list and that no quick run writes here: their keys against the docs."""

from __future__ import annotations

import json

from doc_keys import listed_keys

from dpupose.board.manifest import FORMAT, Manifest, ManifestEntry


def test_the_image_manifest_holds_the_keys_sdcard_and_deploy_md_lists():
    entry = ManifestEntry("/home/xilinx/dpupose/board_setup.sh", 12, "ab" * 32)
    doc = json.loads(Manifest((entry,), "0x101000016010404", None, "dpupose-0.1.0-py3-none-any.whl").to_json())
    assert doc["format"] == FORMAT and doc["plan_fingerprint"] is None
    start = f"`manifest.json` (format `{FORMAT}`) is one object:"
    documented = listed_keys("sdcard-and-deploy.md", start, " and `files`")
    assert list(doc) == [*documented, "files"]
    assert list(doc["files"][0]) == listed_keys("sdcard-and-deploy.md", "and `files`, each with", ".")
