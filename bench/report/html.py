"""Hand-written HTML for the scorecard: escaped cells, tables, embedded PNGs, one inline stylesheet.

Everything user- or data-supplied goes through :func:`esc`; images are ``data:`` URIs, so the page
needs no server, no network and no JavaScript.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


def esc(value: object) -> str:
    """HTML-escaped ``str(value)`` (quotes too, so it is safe inside attributes)."""
    return html.escape(str(value), quote=True)


@dataclass
class Cell:
    """A table cell: plain ``text`` (escaped), or ``raw`` HTML; an optional CSS class and tooltip."""

    text: str = ""
    cls: str = ""
    title: str = ""
    raw: str | None = None
    attrs: dict = field(default_factory=dict)

    def render(self, tag: str = "td") -> str:
        a = ""
        if self.cls:
            a += f' class="{esc(self.cls)}"'
        if self.title:
            a += f' title="{esc(self.title)}"'
        for k, v in self.attrs.items():
            a += f' {k}="{esc(v)}"'
        body = self.raw if self.raw is not None else esc(self.text)
        return f"<{tag}{a}>{body}</{tag}>"


def fmt(v: object, digits: int = 3) -> str:
    """A number to ``digits`` decimals ("-" for NaN/None), anything else as text."""
    if v is None:
        return "-"
    if isinstance(v, (float, np.floating)):
        return "-" if not math.isfinite(v) else f"{float(v):.{digits}f}"
    return str(v)


def table(header: Sequence[str], rows: Sequence[Sequence[object]], *, caption: str = "", cls: str = "") -> str:
    """An HTML table; cells are :class:`Cell` or values (numbers right-aligned, formatted by :func:`fmt`)."""
    out = [f'<div class="tablewrap"><table class="{esc(cls)}">']
    if caption:
        out.append(f"<caption>{esc(caption)}</caption>")
    # a header may break after an underscore (and at spaces): metric names such as relevance_rank_accuracy would
    # otherwise make the overall ranking wider than the page
    out.append("<thead><tr>" + "".join(f"<th>{esc(h).replace('_', '_<wbr>')}</th>" for h in header)
               + "</tr></thead><tbody>")
    for row in rows:
        cells = []
        for v in row:
            if isinstance(v, Cell):
                cells.append(v.render())
            elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)):
                cells.append(f'<td class="num">{esc(fmt(v))}</td>')
            else:
                cells.append(f"<td>{esc(fmt(v))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def img_tag(data: bytes, alt: str, *, mime: str = "image/png", cls: str = "figure") -> str:
    """An ``<img>`` whose source is the image itself, base64-encoded in a ``data:`` URI."""
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img class="{esc(cls)}" alt="{esc(alt)}" src="data:{esc(mime)};base64,{b64}">'


def png_img(png: bytes, alt: str, *, cls: str = "figure") -> str:
    """:func:`img_tag` for a PNG."""
    return img_tag(png, alt, mime="image/png", cls=cls)


def note(text: str, *, cls: str = "note") -> str:
    """A grey box with one message (e.g. why a section is empty)."""
    return f'<p class="{esc(cls)}">{esc(text)}</p>'


CSS = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --zebra:#f6f8fa; --head:#eef2f6; --accent:#0b5cad;
        --good:#1a7f37; --bad:#cf222e; --warn:#9a6700; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin:0; color:var(--fg); background:#fff;
       font: 15px/1.55 -apple-system, BlinkMacSystemFont, "Segoe UI", "Helvetica Neue", Arial, sans-serif; }
header.top { background:#0d2538; color:#fff; padding:28px 0 22px; }
header.top .inner, main, footer { max-width:1320px; margin:0 auto; padding:0 28px; }
header.top h1 { margin:0 0 4px; font-size:26px; font-weight:600; letter-spacing:.2px; }
header.top p { margin:0; color:#b7c7d6; font-size:14px; }
nav.toc { max-width:1320px; margin:18px auto 0; padding:0 28px; font-size:13.5px; }
nav.toc a { color:var(--accent); text-decoration:none; margin-right:14px; white-space:nowrap; }
nav.toc a:hover { text-decoration:underline; }
section { margin:34px 0 10px; }
h2 { font-size:20px; font-weight:600; border-bottom:1px solid var(--line); padding-bottom:6px; margin:0 0 14px; }
h3 { font-size:16px; font-weight:600; margin:26px 0 8px; }
h3 .dir { font-weight:400; color:var(--muted); font-size:14px; }
p { margin:8px 0; }
.muted, caption { color:var(--muted); font-size:13px; }
caption { caption-side:bottom; text-align:left; padding-top:6px; }
.tablewrap { overflow-x:auto; margin:10px 0 14px; }
table { border-collapse:collapse; font-size:13.5px; font-variant-numeric: tabular-nums; }
th, td { padding:5px 8px; border-bottom:1px solid var(--line); text-align:left; white-space:nowrap; vertical-align:top; }
thead th { background:var(--head); font-weight:600; border-bottom:2px solid #b6c2cf; white-space:normal; }
tbody tr:nth-child(even) { background:var(--zebra); }
tbody tr:hover { background:#eaf2fb; }
td.num { text-align:right; }
td.ci { text-align:right; }
td.ci { line-height:1.3; }
td.ci .rk { color:var(--muted); font-size:11.5px; margin-left:5px; }
td.ci .int { color:var(--muted); font-size:11.5px; }
td.num.best, td.best .m { font-weight:700; }
td.baseline, td.method.baseline { color:var(--muted); font-style:italic; }
.mk-dagger { color:var(--warn); font-weight:700; margin-left:3px; }
.mk-up { color:var(--good); margin-left:3px; }
.mk-down { color:var(--bad); margin-left:3px; }
td.pass { color:var(--good); font-weight:600; }
td.fail { color:var(--bad); font-weight:600; }
td.partial { color:var(--warn); font-weight:600; }
.howto { background:#f6f8fa; border-left:3px solid var(--accent); padding:8px 12px; margin:6px 0 10px; font-size:14px; }
.note { background:#fff8c5; border:1px solid #eed888; padding:8px 12px; border-radius:4px; font-size:14px; }
.meta { display:grid; grid-template-columns:repeat(auto-fill, minmax(260px, 1fr)); gap:12px; margin:8px 0 12px; }
.meta .card { border:1px solid var(--line); border-radius:6px; padding:10px 14px; }
.meta .card h4 { margin:0 0 6px; font-size:12px; text-transform:uppercase; letter-spacing:.6px; color:var(--muted); }
.meta .card div { font-size:13.5px; word-break:break-word; }
.meta .card code { font-size:13px; word-break:break-all; }
.side { display:flex; flex-wrap:wrap; gap:8px 28px; align-items:flex-start; }
.side > .tablewrap { flex:0 1 auto; max-width:100%; }
.side > img.figure { flex:0 1 auto; min-width:0; }
img.figure { display:block; max-width:100%; height:auto; margin:8px 0 16px; border:1px solid #eef0f2; }
details { margin:8px 0; }
summary { cursor:pointer; color:var(--accent); font-size:14px; }
pre { background:#f6f8fa; padding:10px 12px; border-radius:4px; overflow-x:auto; font-size:12.5px; line-height:1.45; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
dl.legend { display:grid; grid-template-columns:max-content 1fr; gap:4px 14px; font-size:14px; margin:6px 0; }
dl.legend dt { font-weight:600; }
dl.legend dd { margin:0; }
footer { color:var(--muted); font-size:12.5px; border-top:1px solid var(--line); margin-top:40px; padding-top:12px; padding-bottom:30px; }
@media print { nav.toc { display:none; } header.top { background:#fff; color:#000; } header.top p { color:#444; } }
"""
