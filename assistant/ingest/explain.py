"""Parse errors in Chinese for the people who maintain the lists: which file, where, and why.

The parser's messages are English (logs, tests, the command line); the web app shows these.
"""

from __future__ import annotations

import re
from pathlib import Path

from assistant.ingest.parsing import ParseError

_PLACES = (
    (re.compile(r"^page (\d+) (?:row|line) (\d+)$"), "第{0}页第{1}行"),
    (re.compile(r"^page (\d+)$"), "第{0}页"),
    (re.compile(r"^table (\d+) row (\d+)$"), "第{0}个表格第{1}行"),
    (re.compile(r"^paragraph (\d+)$"), "第{0}段"),
    (re.compile(r"^(\d+)$"), "第{0}行"),
    (re.compile(r"^(.+![A-Z]+\d+)$"), "单元格 {0}"),
)
_REASONS = (
    (r"the file is empty", "文件是空的"),
    (r"larger than any duty list", "文件过大，超过上传大小限制，不像是履职事项清单"),
    (r"not UTF-8 text", "不是 UTF-8 编码的文本，请另存为 UTF-8"),
    (r"no duty-list table found", "不是履职事项清单：没有找到以“序号”开头的表头"),
    (r"no text layer", "PDF 没有文字层（可能是扫描件），请从 Word/WPS 导出 PDF"),
    (r"cannot read this file as|cannot read this page", "文件已损坏或格式不对，无法读取"),
    (r"unsupported file type", "不支持的文件类型（支持 txt、docx、xlsx、pdf）"),
    (r"cannot find the township and county", "标题中找不到乡镇和县的名称"),
    (r"title names (.+), but the document is (.+)$", "标题写的是{0}，但文件是{1}的清单"),
    (r"number (\d+) out of order, expected (\d+)", "序号 {0} 不连续，应为 {1}"),
    (r"row has (\d+) columns, expected (\d+)", "这一行有 {0} 列，应为 {1} 列"),
    (r"header has (\d+) columns, expected (\d+)", "表头有 {0} 列，应为 {1} 列"),
    (r"has an empty (事项名称|事项类别)", "{0}为空"),
    (r"names no 对应上级部门", "没有填写对应上级部门"),
    (r"cannot tell which list this table is", "无法判断这个表格属于哪个清单"),
    (r"second (.+?) \(first at", "重复出现{0}"),
    (r"has no items", "清单没有事项"),
    (r"is also in (.+); skipped", "与 {0} 是同一乡镇，已跳过"),
    (r"no such file", "文件不存在"),
)


def explain(error: ParseError) -> str:
    """'二工镇.txt 第23行：序号 23 不连续，应为 22' (the English reason if it is not a known one)."""
    name = Path(error.source).name
    where = place(error.where)
    reason = error.reason
    for pattern, chinese in _REASONS:
        match = re.search(pattern, reason)
        if match:
            reason = chinese.format(*match.groups())
            break
    return f"{name}{' ' + where if where else ''}：{reason}"


def place(where: str) -> str:
    if where in ("", "0"):
        return ""
    for pattern, chinese in _PLACES:
        match = pattern.match(where)
        if match:
            return chinese.format(*match.groups())
    return where
