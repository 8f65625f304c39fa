"""A report as a list of plain blocks, rendered to Markdown and to one self-contained HTML page.

Keeping the content as data (headings, paragraphs, tables, figures) lets report.md and report.html
say exactly the same thing; the HTML embeds the PNG figures so the page can be mailed on its own.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    png: str  # path relative to the report folder
    svg: str
    caption: str


Block = Heading | Paragraph | Bullets | Table | Figure


def to_markdown(blocks: Sequence[Block]) -> str:
    return "\n\n".join(_markdown_block(block) for block in blocks) + "\n"


def _markdown_block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {block.text}"
    if isinstance(block, Paragraph):
        return block.text
    if isinstance(block, Bullets):
        return "\n".join(f"- {item}" for item in block.items)
    if isinstance(block, Table):
        lines = [_markdown_row(block.header), "|" + "|".join("---" for _ in block.header) + "|"]
        lines += [_markdown_row(row) for row in block.rows]
        return (f"{block.caption}\n\n" if block.caption else "") + "\n".join(lines)
    if isinstance(block, Figure):
        return f"![{block.caption}]({block.png})\n\n*{block.caption}* ([SVG]({block.svg}))"
    raise TypeError(f"unknown report block {type(block).__name__}")


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"


_STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #1b1b1b; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { border-bottom: 1px solid #eee; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: 0.88em; }
th, td { border: 1px solid #d0d0d0; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
.caption { font-size: 0.9em; color: #444; margin-bottom: .2em; }
"""


def to_html(blocks: Sequence[Block], title: str, root: Path) -> str:
    """One HTML page; figures are read from ``root`` and embedded as base64 PNG, linked to their SVG."""
    body = "\n".join(_html_block(block, root) for block in blocks)
    head = f"<meta charset=\"utf-8\">\n<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>"
    return f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n{head}\n</head>\n<body>\n{body}\n</body>\n</html>\n"


def _html_block(block: Block, root: Path) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{html.escape(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{html.escape(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>\n" + "\n".join(f"<li>{html.escape(item)}</li>" for item in block.items) + "\n</ul>"
    if isinstance(block, Table):
        head = "".join(f"<th>{html.escape(cell)}</th>" for cell in block.header)
        rows = "\n".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
                         for row in block.rows)
        caption = f"<div class=\"caption\">{html.escape(block.caption)}</div>\n" if block.caption else ""
        return f"{caption}<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>"
    if isinstance(block, Figure):
        data = base64.b64encode((root / block.png).read_bytes()).decode("ascii")
        return (f"<figure><img alt=\"{html.escape(block.caption)}\" src=\"data:image/png;base64,{data}\">"
                f"<figcaption>{html.escape(block.caption)} (<a href=\"{html.escape(block.svg)}\">SVG</a>)"
                f"</figcaption></figure>")
    raise TypeError(f"unknown report block {type(block).__name__}")
