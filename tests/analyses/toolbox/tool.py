"""A test Analysis that does what its params say: write outputs, crash, hog memory,
sleep, write too much log, write undeclared files or symlinks, read a corrupt input."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

job = json.loads(Path(os.environ["ROLLERBLADE_SLICE_FILE"]).read_text())
mode = job["params"].get("mode", "ok")
out = Path(os.environ["ROLLERBLADE_OUTPUT"])
inp = Path(os.environ["ROLLERBLADE_INPUT"])
print(f"mode={mode} slice={job['slice']} records={len(job['records'])}", flush=True)

if mode == "crash":
    print("something went wrong", file=sys.stderr)
    sys.exit(3)
if mode == "oom":
    hog = bytearray(1024 * 1024 * 1024)
    print(len(hog))
if mode == "sleep":
    time.sleep(float(job["params"].get("seconds", 30)))
if mode == "biglog":
    line = "x" * 99 + "\n"
    for _ in range(40_000):  # 4 MB
        sys.stdout.write(line)
if mode == "read":  # read every input image fully (fails on corrupt data)
    import nibabel as nib

    for record in job["records"]:
        nib.load(inp / record["path"]).get_fdata()
if mode == "network":
    import socket

    socket.create_connection(("127.0.0.1", 9), timeout=2)
if mode == "write-input":
    (inp / "tamper.txt").write_text("x")
if mode == "whoami":
    print(f"uid={os.getuid()}")

for i, path in enumerate(job["outputs"]):
    if mode == "missing" and i == len(job["outputs"]) - 1:
        break
    target = out / path
    target.parent.mkdir(parents=True, exist_ok=True)
    if path.endswith(".json"):
        target.write_text(json.dumps({"Mode": mode, "Records": len(job["records"])}))
    else:
        source = inp / job["records"][0]["path"]
        target.write_bytes(source.read_bytes())
if mode == "extra":
    (out / "stray.txt").write_text("not declared")
if mode == "symlink":
    os.symlink("/etc/passwd", out / "link.txt")
