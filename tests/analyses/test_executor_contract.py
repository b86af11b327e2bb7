"""The LocalExecutor contract, over the docker and process executors: run a command on a
staged slice, pass the environment, enforce timeout and memory, cap logs, report exits."""

from __future__ import annotations

import json
from pathlib import Path

from rollerblade.adapters.local_exec import ExecSpec, LocalExecutor
from tests.analyses.conftest import TOOLBOX


def exec_spec(tmp_path: Path, executor: LocalExecutor, mode: str, **overrides: object) -> ExecSpec:
    folder = tmp_path / "tool"
    if not folder.exists():
        import shutil

        shutil.copytree(TOOLBOX, folder)
    image = executor.prepare(folder=str(folder), image_build=".", image_ref=None, tag="rollerblade-test/tool:1")
    staged, output = tmp_path / "input", tmp_path / "output"
    (staged / ".rollerblade").mkdir(parents=True, exist_ok=True)
    output.mkdir(exist_ok=True)
    (staged / "sub-01").mkdir(exist_ok=True)
    (staged / "sub-01" / "data.txt").write_text("hello")
    job = {
        "slice": "sub-01",
        "params": {"mode": mode, "seconds": 30},
        "outputs": ["out/result.json"],
        "records": [{"path": "sub-01/data.txt"}],
    }
    (staged / ".rollerblade" / "slice.json").write_text(json.dumps(job))
    for path in [staged, *staged.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    values: dict[str, object] = dict(
        job_key=f"test-{mode}",
        image=image if executor.name == "docker" else str(folder),
        command=("python3", "tool.py"),
        input_dir=str(staged),
        output_dir=str(output),
        env={
            "ROLLERBLADE_INPUT": "/input",
            "ROLLERBLADE_OUTPUT": "/output",
            "ROLLERBLADE_SLICE_FILE": "/input/.rollerblade/slice.json",
        },
        cpu=1.0,
        memory=512 << 20,
        timeout=60.0,
        log_path=str(tmp_path / "log.txt"),
    )
    values.update(overrides)
    return ExecSpec(**values)  # type: ignore[arg-type]


def test_success_writes_outputs_and_logs(executor: LocalExecutor, tmp_path: Path) -> None:
    result = executor.run(spec=exec_spec(tmp_path, executor, "ok"))
    assert result.exit_code == 0 and result.error is None and not result.timed_out and not result.oom_killed
    assert json.loads((tmp_path / "output" / "out" / "result.json").read_text()) == {"Mode": "ok", "Records": 1}
    assert "mode=ok slice=sub-01 records=1" in (tmp_path / "log.txt").read_text()
    assert result.started <= result.ended


def test_non_zero_exit_is_reported_with_stderr_in_the_log(executor: LocalExecutor, tmp_path: Path) -> None:
    result = executor.run(spec=exec_spec(tmp_path, executor, "crash"))
    assert result.exit_code == 3 and not result.timed_out
    assert "something went wrong" in (tmp_path / "log.txt").read_text()


def test_timeout_kills(executor: LocalExecutor, tmp_path: Path) -> None:
    result = executor.run(spec=exec_spec(tmp_path, executor, "sleep", timeout=2.0))
    assert result.timed_out and result.exit_code != 0


def test_memory_limit(executor: LocalExecutor, tmp_path: Path) -> None:
    result = executor.run(spec=exec_spec(tmp_path, executor, "oom", memory=128 << 20))
    assert result.exit_code != 0
    if executor.name == "docker":
        assert result.oom_killed and result.exit_code == 137


def test_huge_logs_are_capped(executor: LocalExecutor, tmp_path: Path) -> None:
    result = executor.run(spec=exec_spec(tmp_path, executor, "biglog", log_limit=64 * 1024))
    log = (tmp_path / "log.txt").read_bytes()
    assert result.exit_code == 0 and result.log_truncated and result.log_bytes > 4_000_000
    assert len(log) < 70 * 1024 and b"bytes of log omitted" in log and log.startswith(b"mode=biglog")


def test_missing_command_is_an_error_not_a_crash(executor: LocalExecutor, tmp_path: Path) -> None:
    result = executor.run(spec=exec_spec(tmp_path, executor, "ok", command=("no-such-program-xyz",)))
    assert result.exit_code != 0 or result.error
