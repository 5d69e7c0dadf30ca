"""scripts/gpu_check.py's closing table, from the files the stages leave (no GPU, no network).

The stages themselves run in scripts/gpu_check.sh --dry (scripts/test.sh) and on a GPU machine.
"""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.test_native" name="test_gradcheck_float64[cuda]"/>
<testcase classname="tests.test_native" name="test_binned[cuda]"><failure message="x"/></testcase>
<testcase classname="tests.test_native_frags" name="test_b[cuda]"><skipped message="s"/></testcase>
</testsuite></testsuites>"""


def _report(out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "report", str(out), "--arch", "9.0"],
                          capture_output=True, text=True, timeout=60)


def test_report_table_names_failures_timeouts_and_benchmark_ratios(tmp_path):
    lines = [
        {"stage": "env", "metrics": {"python": "3.12.3", "torch": "2.11.0", "gpu": "GPU X",
                                     "from_wheels": ["trimesh"], "not_from_wheels": []}},
        {"stage": "env", "status": "ok", "seconds": 1.5, "note": ""},
        {"stage": "tests", "status": "FAIL (exit 1)", "seconds": 80.0, "note": "1 failed"},
        {"stage": "fit", "metrics": {"steps": 200, "ms_per_step": 5.0, "cpu_ms_per_step": 50.0,
                                     "loss_start": 0.5, "loss_end": 0.05, "hard_iou": 0.97}},
        {"stage": "fit", "status": "ok", "seconds": 3.0, "note": ""},
        {"stage": "bench", "status": "TIMEOUT", "seconds": 200.0, "note": "last line"},
        {"stage": "sanitizer", "status": "skipped", "seconds": 0, "note": "needs a GPU"},
    ]
    (tmp_path / "results.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    (tmp_path / "tests.xml").write_text(JUNIT)
    rows = [{"res": 256, "faces": 5120, "op": op, "backend": b, "seconds": t}
            for op in ("full", "vis") for b, t in (("cuda", 0.002), ("cpu", 0.02))]
    (tmp_path / "bench.json").write_text(json.dumps({"backends": ["cuda", "cpu"], "rows": rows}))
    r = _report(tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr  # two stages not ok
    table = r.stdout
    assert (tmp_path / "summary.txt").read_text().strip() == table.strip()
    assert "GPU X" in table.splitlines()[0] and "arch 9.0" in table.splitlines()[0]
    row = {ln.split("|")[1].strip(): ln for ln in table.splitlines() if ln.startswith("| ")}
    assert "1 passed, 1 failed, 1 skipped" in row["tests"]
    assert "test_native::test_binned[cuda]" in row["tests"] and "1 failed" in row["tests"]
    assert "200 steps" in row["fit"] and "10.0x" in row["fit"] and "0.970" in row["fit"]
    assert "TIMEOUT" in row["bench"] and "last line" in row["bench"]
    assert "skipped" in row["sanitizer"] and "needs a GPU" in row["sanitizer"]
    assert "2 not ok" in row["total"]
    bench = [ln for ln in table.splitlines() if ln.startswith("| 256")]
    assert [ln.split("|")[3].strip() for ln in bench] == ["vis", "full"]  # the ops' order
    assert all(ln.rstrip(" |").endswith("10.0x") for ln in bench)


def test_report_is_ok_when_every_stage_is(tmp_path):
    lines = [{"stage": "install", "status": "ok", "seconds": 2.0, "note": ""},
             {"stage": "sanitizer", "status": "skipped", "seconds": 0, "note": "needs a GPU"}]
    (tmp_path / "results.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    r = _report(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "| total | ok |" in r.stdout
