"""What a batch shows and leaves behind: the progress bar, ``summary.csv``, ``summary.json`` and
``report.html``. No Qt, no Ray.

A record (one per row, from :mod:`studio.batch.run`) holds ``name``, ``row``, ``key``,
``status`` ("done" or "failed"), ``error``, ``steps``, ``losses`` (the last step's terms and
``total``), ``silhouette_iou``, ``wall_s``, ``cpu_s``, ``worker`` (host:pid), ``attempts``,
``warnings`` and ``loss_curve`` (the total loss per step). The HTML page needs nothing but
its folder: the contact sheets are the fits' own PNGs, linked relatively, the loss curves
inline SVG, the sort a few lines of inline script.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from pathlib import Path

import render_core as rc

LOSS_COLUMNS = ("total", "iou", "l1", "laplacian", "normal", "edge", "texture_tv")
CSV_COLUMNS = ("name", "row", "status", "steps", *(f"loss_{k}" for k in LOSS_COLUMNS),
               "silhouette_iou", "wall_s", "cpu_s", "worker", "attempts", "error")


def _clean(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def write_all(out: Path, records: list[dict], names: list[str]) -> None:
    """Write the three summary files (atomically) for ``records``, in manifest order;
    rows of ``names`` without a record are listed as not run."""
    have = {r["name"] for r in records}
    rows = list(records) + [{"name": n, "status": "not run"} for n in names if n not in have]
    summary = [{k: (_clean(v) if not isinstance(v, dict) else
                    {a: _clean(b) for a, b in v.items()}) for k, v in r.items()
                if k != "loss_curve"} for r in rows]
    rc.atomic_write_text(out / "summary.json", json.dumps({"fits": summary}, indent=1))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for r in rows:
        losses = r.get("losses") or {}
        w.writerow([r.get("name"), r.get("row", ""), r.get("status"), r.get("steps", ""),
                    *(_fmt(losses.get(k)) for k in LOSS_COLUMNS),
                    _fmt(r.get("silhouette_iou")), _fmt(r.get("wall_s")), _fmt(r.get("cpu_s")),
                    r.get("worker", ""),
                    r.get("attempts", ""), r.get("error", "")])
    rc.atomic_write_text(out / "summary.csv", buf.getvalue())
    rc.atomic_write_text(out / "report.html", html_page(out, rows))


def _fmt(v) -> str:
    return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.6g}"


def loss_svg(curve: list, width: int = 160, height: int = 48) -> str:
    """The loss curve (log scale) as a small inline SVG polyline."""
    pts = [(i, math.log10(v)) for i, v in enumerate(curve)
           if isinstance(v, (int, float)) and math.isfinite(v) and v > 0]
    if len(pts) < 2:
        return ""
    lo, hi = min(p[1] for p in pts), max(p[1] for p in pts)
    span, n = (hi - lo) or 1.0, max(len(curve) - 1, 1)
    xy = " ".join(f"{2 + (width - 4) * i / n:.1f},{2 + (height - 4) * (hi - y) / span:.1f}"
                  for i, y in pts)
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
            f'<rect width="{width}" height="{height}" fill="#f6f6f6"/>'
            f'<polyline fill="none" stroke="#c0392b" stroke-width="1.5" points="{xy}"/></svg>')


_SCRIPT = """
function sortBy(col, numeric) {
  const body = document.querySelector('#fits tbody');
  const rows = Array.from(body.rows);
  const th = document.querySelectorAll('#fits th')[col];
  const dir = th.dataset.dir === 'asc' ? -1 : 1;
  th.dataset.dir = dir === 1 ? 'asc' : 'desc';
  const key = r => r.cells[col].dataset.v;
  rows.sort((a, b) => {
    if (!numeric) return dir * key(a).localeCompare(key(b));
    const x = parseFloat(key(a)), y = parseFloat(key(b));
    if (isNaN(x) || isNaN(y)) return isNaN(x) - isNaN(y);
    return dir * (x - y);
  });
  rows.forEach(r => body.appendChild(r));
}
"""


def html_page(out: Path, rows: list[dict]) -> str:
    """report.html: one table row per fit, sortable by clicking a column head."""
    heads = [("fit", False), ("status", False), ("total loss", True), ("silhouette IoU", True),
             ("steps", True), ("wall s", True), ("worker", False), ("contact sheet", None),
             ("loss curve", None)]
    th = "".join(f'<th onclick="sortBy({i}, {str(num).lower()})">{h}</th>' if num is not None
                 else f"<th>{h}</th>" for i, (h, num) in enumerate(heads))
    body = []
    for r in rows:
        name = str(r.get("name"))
        total = (r.get("losses") or {}).get("total")
        iou = r.get("silhouette_iou")
        sheet = out / name / "contact_sheet.png"
        img = (f'<img src="{html.escape(name)}/contact_sheet.png" height="96" '
               f'alt="contact sheet of {html.escape(name)}">'
               if r.get("status") == "done" and sheet.is_file() else "")
        status = html.escape(str(r.get("status")))
        if r.get("error"):
            status += f'<div class="err">{html.escape(str(r["error"]))}</div>'
        cells = [(name, html.escape(name)), (str(r.get("status")), status),
                 (_fmt(total), _fmt(total)), (_fmt(iou), _fmt(iou)),
                 (str(r.get("steps", "")), str(r.get("steps", ""))),
                 (_fmt(r.get("wall_s")), _fmt(r.get("wall_s"))),
                 (str(r.get("worker", "")), html.escape(str(r.get("worker", "")))),
                 ("", img), ("", loss_svg(r.get("loss_curve") or []))]
        body.append("<tr>" + "".join(f'<td data-v="{html.escape(v)}">{c}</td>'
                                     for v, c in cells) + "</tr>")
    done = sum(r.get("status") == "done" for r in rows)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>dibr-studio batch report</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; vertical-align: middle; }}
th[onclick] {{ cursor: pointer; background: #eee; }}
.err {{ color: #b00; font-size: small; max-width: 30em; }}
</style></head><body>
<h1>dibr-studio batch</h1>
<p>{done} of {len(rows)} fits done. Click a column head to sort.</p>
<table id="fits"><thead><tr>{th}</tr></thead><tbody>
{chr(10).join(body)}
</tbody></table>
<script>{_SCRIPT}</script>
</body></html>
"""


class ProgressBar:
    """Fits done / running / failed with an ETA (tqdm), and a live line of the running fits."""

    def __init__(self, total: int, skipped: int, enabled: bool = True):
        self.enabled = enabled
        self.running: dict[str, str] = {}
        self.failed = 0
        self.skipped = skipped
        if not enabled:
            return
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=skipped, desc="fits", unit="fit",
                        dynamic_ncols=True)
        self.line = tqdm(total=0, bar_format="{desc}", position=1, dynamic_ncols=True)
        self._refresh()

    def _refresh(self) -> None:
        if not self.enabled:
            return
        self.bar.set_postfix(running=len(self.running), failed=self.failed,
                             skipped=self.skipped, refresh=False)
        self.bar.refresh()
        live = "; ".join(f"{n} {s}" for n, s in sorted(self.running.items())[:4])
        more = len(self.running) - 4
        self.line.set_description_str((live + (f"; +{more} more" if more > 0 else ""))[:200])

    def started(self, name: str) -> None:
        self.running[name] = "starting"
        self._refresh()

    def step(self, name: str, info: dict) -> None:
        self.running[name] = (f"step {info.get('step')}/{info.get('steps')} "
                              f"loss {info.get('loss', float('nan')):.4f}")
        self._refresh()

    def finished(self, name: str, status: str) -> None:
        self.running.pop(name, None)
        self.failed += status != "done"
        if self.enabled:
            self.bar.update(1)
        self._refresh()

    def close(self) -> None:
        if self.enabled:
            self.line.close()
            self.bar.close()
