"""report.html is report.md rendered (markdown-it), self-contained, and renders in headless
Chromium with every chart visible and none of them mostly empty.

Chromium is not a Python dependency: ``apt-get install -y chromium`` (Debian). Without it the
screenshot test is skipped and says so (on CI, ``CI=true``, it fails); the embedding checks run
everywhere.
"""

import base64
import datetime as dt
import io
import json
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from cluster.ledger import Allocation, Ledger, utcnow
from jobs import cost_report
from tests.conftest import require
from tests.jobs.cost.samples import bench_json

REPO = Path(__file__).resolve().parents[3]
CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
WIDTH, HEIGHT = 1280, 4000


class Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.srcs.append(a.get("src") or "")
        for key in ("src", "href"):
            if a.get(key) and not a[key].startswith(("data:", "#")):
                self.external.append(f"<{tag} {key}={a[key]}>")


@pytest.fixture
def report(platform_root, monkeypatch) -> Path:
    monkeypatch.chdir(REPO)
    ledger = Ledger()
    t0 = utcnow() - dt.timedelta(days=1)
    wid = ledger.start("serve", "demo", started_at=t0)
    ledger.finish(wid, "SUCCEEDED", [Allocation("CPU", cpus=2, nodes=1)], ended_at=utcnow())
    bench = platform_root / "reports" / "bench" / "b1" / "bench.json"
    bench.parent.mkdir(parents=True)
    bench.write_text(json.dumps(bench_json()))
    assert cost_report.main(["--config", "jobs/configs/cost/demo.yaml", "name=html"]) == 0
    return platform_root / "reports" / "cost" / "html"


def test_html_embeds_every_chart_as_a_valid_png(report):
    page = (report / "report.html").read_text()
    parser = Images()
    parser.feed(page)
    charts = sorted(p.name for p in report.glob("*.png"))
    assert len(parser.srcs) == len(charts) == 5
    for src in parser.srcs:
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert len(data) > 5000
        img = Image.open(io.BytesIO(data))
        img.verify()  # a valid PNG, not just bytes
        assert img.format == "PNG"
    assert parser.external == [], "the page must not load anything from outside"
    assert "<script" not in page
    # the same sections, tables and words as report.md (one template renders both)
    md = (report / "report.md").read_text()
    headings = [line.lstrip("# ") for line in md.splitlines() if line.startswith("#")]
    assert headings == re.findall(r"<h[1-3]>(.*?)</h[1-3]>", page)
    assert md.count("\n|---|") == page.count("<table>")
    # the decision comes first, in both languages, before any chart
    verdict = json.loads((report / "summary.json").read_text())["results"]["decision_en"]
    assert page.index(f"<strong>{verdict}</strong>") < page.index("<img")
    assert page.index("<strong>En español:</strong>") < page.index("<img")


def _chromium(*args: str, profile: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


# Appended to a copy of the page only (the report itself has no script): where each image is
# laid out and whether the browser decoded it.
_PROBE = """<script>
window.addEventListener('load', () => {
  const rows = [...document.images].map(i => {
    const r = i.getBoundingClientRect();
    return [i.complete, i.naturalWidth, i.naturalHeight, r.left, r.top, r.width, r.height];
  });
  const pre = document.createElement('pre'); pre.id = 'probe';
  pre.textContent = JSON.stringify({imgs: rows, height: document.body.scrollHeight});
  document.body.appendChild(pre);
});
</script>"""


def test_chromium_renders_every_chart(report, tmp_path):
    require(CHROMIUM is not None, "chromium not found: apt-get install -y chromium")
    start = time.perf_counter()
    probe_page = tmp_path / "probe.html"
    probe_page.write_text(
        (report / "report.html").read_text().replace("</body>", _PROBE + "</body>")
    )
    dom = _chromium(
        f"--window-size={WIDTH},{HEIGHT}",
        "--dump-dom",
        probe_page.as_uri(),
        profile=tmp_path / "profile-dom",
    )
    assert '<pre id="probe">' in dom.stdout, dom.stderr[-2000:]
    probe = json.loads(dom.stdout.split('<pre id="probe">')[1].split("</pre>")[0])
    imgs = probe["imgs"]
    assert len(imgs) == 5
    for complete, nat_w, nat_h, *_ in imgs:
        assert complete and nat_w > 500 and nat_h > 200, "a chart did not decode"

    height = max(HEIGHT, int(probe["height"]) + 20)  # tall enough for every chart
    shot = tmp_path / "report.png"
    run = _chromium(
        f"--window-size={WIDTH},{height}",
        f"--screenshot={shot}",
        (report / "report.html").as_uri(),
        profile=tmp_path / "profile-shot",
    )
    assert shot.is_file(), run.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (WIDTH, height)
    colors = image.getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 500, "the screenshot is blank or nearly"
    for _, _, _, left, top, w, h in imgs:
        box = (int(left), int(top), int(left + w), int(top + h))
        assert box[3] <= height, "a chart lies below the screenshot"
        chart = image.crop(box)
        chart_colors = chart.getcolors(maxcolors=1 << 20)
        assert chart_colors is not None and len(chart_colors) > 50, f"chart at {box} is blank"
        # not just white: at least 2% of the chart's pixels are ink (lines, bars, text)
        ink = sum(n for n, rgb in chart_colors if sum(rgb) < 600)
        assert ink > 0.02 * w * h, f"chart at {box} shows almost nothing"
    print(f"\nchromium: 2 runs in {time.perf_counter() - start:.1f} s, page {height} px tall")
