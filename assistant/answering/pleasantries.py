"""Greetings and thanks: not questions about the lists, so they are answered, not searched.

A chat in an office's messaging tool opens with 你好 or 在吗 and ends with 谢谢. Searched, "你好"
was declined as a service no list covers, with three unrelated items as 相关事项. A message made
of nothing but such words gets a short reply saying what the assistant answers; a message with
anything more ("你好，私自宰羊归谁管") is a question and is searched as one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

GREETINGS = re.compile(
    r"你们?好|您好|大家好|在吗|在不在|有人吗|哈喽|嗨|hi|hello|早上好|上午好|中午好|下午好|晚上好|早安|打扰了|请问"
    r"|你是谁|你能做什么|你会什么|你能干什?么|能问什么|可以问什么|怎么用|怎么使用|有什么功能|使用说明|帮助|help"
)  # a greeting, or a question about the assistant itself: both are told what it answers
THANKS = re.compile(r"谢谢|多谢|感谢|谢了|辛苦了|好的|收到|明白了|知道了|懂了|ok|再见|拜拜")
# What may surround them: punctuation, particles, forms of address
_AROUND = re.compile(r"[\W_]|[啊呀哈呢吧哦噢嗯喔啦了的我]|您|你们?|老师|领导|同志|小?助手")

GREETING_REPLY = (
    "您好！我按{towns}的履职事项清单回答问题：一件事乡镇该做什么、要配合县里哪个部门、哪些事项已由"
    "上级部门收回。可以直接描述遇到的情况，例如“村里有人私自宰羊，镇里该做什么？”"
)
THANKS_REPLY = "不客气。还有问题可以接着问。"


def reply(message: str, towns: Sequence[str]) -> str | None:
    """The reply to a message that is only a greeting or thanks; None for anything else."""
    text = message.lower()
    thanks = THANKS.search(text)
    if not (thanks or GREETINGS.search(text)):
        return None
    if _AROUND.sub("", THANKS.sub("", GREETINGS.sub("", text))):
        return None
    return THANKS_REPLY if thanks else GREETING_REPLY.format(towns="、".join(towns))
