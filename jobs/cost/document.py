"""A tiny document model rendered twice: Markdown (``report.md``) and a self-contained HTML
page (``report.html``: charts embedded as base64 PNG, inline CSS, no external resources).

    doc = [H(1, "Cost report"), P("text"), Table(["a", "b"], [["1", "2"]]), Img("c.png", "chart")]
    markdown(doc); html(doc, folder, title="Cost report")
"""

from __future__ import annotations

import base64
import html as _html
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class H:
    level: int
    text: str


@dataclass(frozen=True)
class P:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Img:
    file: str
    alt: str


Block = H | P | Bullets | Table | Img


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(doc: list[Block]) -> str:
    out: list[str] = []
    for b in doc:
        if isinstance(b, H):
            out += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, P):
            out += [b.text, ""]
        elif isinstance(b, Bullets):
            out += [f"- {item}" for item in b.items] + [""]
        elif isinstance(b, Table):
            out.append("| " + " | ".join(_cell(h) for h in b.headers) + " |")
            out.append("|" + "---|" * len(b.headers))
            out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in b.rows]
            out.append("")
        elif isinstance(b, Img):
            out += [f"![{b.alt}]({b.file})", ""]
    return "\n".join(out).rstrip() + "\n"


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;
margin:24px auto;padding:0 16px;color:#222;line-height:1.45}
h1{border-bottom:2px solid #1f77b4;padding-bottom:4px}
h2{margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0 16px;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f4f8}tr:nth-child(even) td{background:#fafafa}
img{max-width:100%;border:1px solid #eee;margin:8px 0}
code{background:#f4f4f4;padding:0 3px}
"""


def _inline(text: str) -> str:
    """Escape, then render `code` and **bold** (the only inline Markdown the report uses)."""
    parts = _html.escape(text).split("`")
    for i in range(1, len(parts), 2):
        parts[i] = f"<code>{parts[i]}</code>"
    joined = "".join(parts)
    bold = joined.split("**")
    for i in range(1, len(bold), 2):
        bold[i] = f"<b>{bold[i]}</b>"
    return "".join(bold)


def html(doc: list[Block], folder: Path, title: str) -> str:
    """The HTML page; images are read from ``folder`` and embedded as data URIs."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_html.escape(title)}</title><style>{_CSS}</style></head><body>",
    ]
    for b in doc:
        if isinstance(b, H):
            out.append(f"<h{b.level}>{_inline(b.text)}</h{b.level}>")
        elif isinstance(b, P):
            out.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{_inline(h)}</th>" for h in b.headers)
            body = "".join(
                "<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in row) + "</tr>"
                for row in b.rows
            )
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(b, Img):
            data = base64.b64encode((folder / b.file).read_bytes()).decode("ascii")
            out.append(
                f'<p><img alt="{_html.escape(b.alt)}" src="data:image/png;base64,{data}"></p>'
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"
