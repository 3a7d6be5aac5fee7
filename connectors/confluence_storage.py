"""Confluence's storage format (its XHTML with `ac:` macros) as Markdown: what the Confluence
connector indexes for a page body. Shared HTML clean-up comes from `connectors.parsing`."""

from __future__ import annotations

from typing import Any

from bs4 import BeautifulSoup
from markdownify import markdownify

from connectors.parsing import collapse_whitespace, tidy

PANEL_MACROS = {"info": "Info", "note": "Note", "warning": "Warning", "tip": "Tip", "panel": "Note"}
DROPPED_MACROS = {"toc", "children", "recently-updated", "pagetree", "livesearch", "anchor"}


def storage_to_markdown(storage: str) -> str:
    """Confluence storage-format XHTML -> Markdown.

    Keeps headings, tables, code macros (with their language), info/note/warning/tip panels,
    task lists, links and user mentions; drops navigation macros (toc, children) and images.
    """
    soup = BeautifulSoup(f"<div>{storage}</div>", "html.parser")
    for macro in soup.find_all("ac:structured-macro"):
        name = str(macro.get("ac:name", "")).lower()
        if name in DROPPED_MACROS:
            macro.decompose()
        elif name in ("code", "noformat"):
            language = macro.find("ac:parameter", attrs={"ac:name": "language"})
            body = macro.find("ac:plain-text-body")
            pre = soup.new_tag("pre")
            code = soup.new_tag("code")
            if language is not None and language.get_text(strip=True):
                code["class"] = f"language-{language.get_text(strip=True)}"
            code.string = body.get_text() if body is not None else ""
            pre.append(code)
            macro.replace_with(pre)
        elif name in PANEL_MACROS:
            body = macro.find("ac:rich-text-body")
            quote = soup.new_tag("blockquote")
            label = soup.new_tag("p")
            strong = soup.new_tag("strong")
            strong.string = PANEL_MACROS[name] + ":"
            label.append(strong)
            quote.append(label)
            if body is not None:
                for child in list(body.children):
                    quote.append(child)
            macro.replace_with(quote)
        else:  # unknown macros: keep whatever readable body they have
            body = macro.find("ac:rich-text-body") or macro.find("ac:plain-text-body")
            if body is not None:
                macro.replace_with(body)
            else:
                macro.decompose()
    for task in soup.find_all("ac:task"):
        status = task.find("ac:task-status")
        body = task.find("ac:task-body")
        item = soup.new_tag("li")
        done = status is not None and status.get_text(strip=True) == "complete"
        item.string = ("[x] " if done else "[ ] ") + (
            body.get_text(" ", strip=True) if body else ""
        )
        task.replace_with(item)
    for task_list in soup.find_all("ac:task-list"):
        task_list.name = "ul"
    for link in soup.find_all("ac:link"):
        user = link.find("ri:user")
        page = link.find("ri:page")
        body = link.find(["ac:plain-text-link-body", "ac:link-body"])
        if user is not None:
            text = "@" + str(
                user.get("ri:username")
                or user.get("ri:userkey")
                or user.get("ri:account-id")
                or "user"
            )
        elif body is not None and body.get_text(strip=True):
            text = body.get_text(strip=True)
        elif page is not None:
            text = str(page.get("ri:content-title", ""))
        else:
            text = link.get_text(strip=True)
        link.replace_with(text)
    collapse_whitespace(soup)
    for tag in soup.find_all(
        ["ac:image", "ac:emoticon", "ac:placeholder", "ac:inline-comment-marker"]
    ):
        if tag.name == "ac:inline-comment-marker":
            tag.unwrap()
        else:
            tag.decompose()
    markdown = markdownify(
        str(soup.div),
        heading_style="ATX",
        bullets="-",
        code_language_callback=_code_language,
    )
    return tidy(str(markdown))


def _code_language(element: Any) -> str:
    code = element.find("code") if element is not None else None
    for css in (code.get("class") or []) if code is not None else []:
        if str(css).startswith("language-"):
            return str(css)[len("language-") :]
    return ""
