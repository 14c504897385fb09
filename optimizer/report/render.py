"""Renderers: the report's blocks as Markdown (report.md) and as one self-contained HTML page.

Place in the data flow: the last step of `optimizer.report.build`; pure functions of the blocks.
Inline `code` and **bold** are carried into HTML; everything else is escaped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from optimizer.report.document import Block, Code, Heading, Para, Table


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Para):
            out += [block.text, ""]
        elif isinstance(block, Code):
            out += ["```", block.text, "```", ""]
        elif isinstance(block, Table):
            aligns = [
                "---:" if i in block.align_right else "---" for i in range(len(block.header))
            ]
            out.append("| " + " | ".join(_md_cell(h) for h in block.header) + " |")
            out.append("|" + "|".join(aligns) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            out.append("")
        else:
            out += [f"![{block.alt}]({block.path})", ""]
    return "\n".join(out).rstrip() + "\n"


_INLINE = re.compile(r"`([^`]+)`|\*\*([^*]+)\*\*")


def _inline_html(text: str) -> str:
    parts: list[str] = []
    last = 0
    for match in _INLINE.finditer(text):
        parts.append(html.escape(text[last : match.start()]))
        if match.group(1) is not None:
            parts.append(f"<code>{html.escape(match.group(1))}</code>")
        else:
            parts.append(f"<strong>{html.escape(match.group(2))}</strong>")
        last = match.end()
    parts.append(html.escape(text[last:]))
    return "".join(parts)


_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222}table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid
#ccc;padding:4px 8px;vertical-align:top}th{background:#f3f3f3}td.r{text-align:right;
font-variant-numeric:tabular-nums}code,pre{background:#f6f8fa;font-size:13px}pre{padding:8px;
overflow-x:auto}img{max-width:100%}"""


def to_html(blocks: Sequence[Block], title: str) -> str:
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{_inline_html(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            out.append(f"<p>{_inline_html(block.text)}</p>")
        elif isinstance(block, Code):
            out.append(f"<pre><code>{html.escape(block.text)}</code></pre>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{_inline_html(h)}</th>" for h in block.header)
            rows = []
            for row in block.rows:
                cells = "".join(
                    f'<td class="r">{_inline_html(c)}</td>'
                    if i in block.align_right
                    else f"<td>{_inline_html(c)}</td>"
                    for i, c in enumerate(row)
                )
                rows.append(f"<tr>{cells}</tr>")
            body = "".join(rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        else:
            src, alt = html.escape(block.path), html.escape(block.alt)
            out.append(f'<p><img src="{src}" alt="{alt}"></p>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"
