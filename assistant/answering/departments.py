"""Department names: one key per department across spellings, levels and short forms.

吉木萨尔县水利局, 县水利局 and 水利局 are one department (key 水利局); so are
文化体育广播电视和旅游局 and 文化体育广播电视台和旅游局 (key 文旅局's full name). Keys drop the
place (the county is a filter of its own), so the same department of two counties shares one
key, which is what "县水利局" in a question means.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Spelling variants seen in published lists → one spelling.
VARIANTS = {
    "文化体育广播电视台和旅游局": "文化体育广播电视和旅游局",
    "商务科技和工业信息化局": "商务和工业信息化局",
    "卫生和健康委员会": "卫生健康委员会",
    "人力资源与社会保障局": "人力资源和社会保障局",
    "发展改革委员会": "发展和改革委员会",
}
# Short forms cadres use → key. Only applied when the key exists in the loaded lists.
ABBREVIATIONS = {
    "文旅局": "文化体育广播电视和旅游局",
    "文体广旅局": "文化体育广播电视和旅游局",
    "文广旅局": "文化体育广播电视和旅游局",
    "应急局": "应急管理局",
    "人社局": "人力资源和社会保障局",
    "卫健委": "卫生健康委员会",
    "卫健局": "卫生健康委员会",
    "市监局": "市场监督管理局",
    "市场监管局": "市场监督管理局",
    "发改委": "发展和改革委员会",
    "发改局": "发展和改革委员会",
    "住建局": "住房和城乡建设局",
    "农业局": "农业农村局",
    "农业农村": "农业农村局",
    "林草局": "林业和草原局",
    "林业局": "林业和草原局",
    "国土局": "自然资源局",
    "自规局": "自然资源局",
    "医保局": "医疗保障局",
    "交通局": "交通运输局",
    "消防大队": "消防救援局",
    "消防队": "消防救援局",
    "消防救援大队": "消防救援局",
    "环保局": "生态环境局",
    "环境局": "生态环境局",
    "生态环境分局": "生态环境局",
    "组织部": "县委组织部",
    "宣传部": "县委宣传部",
    "统战部": "县委统战部",
    "政法委": "县委政法委",
    "编办": "县委编办",
    "社会工作部": "县委社会工作部",
    "社工部": "县委社会工作部",
    "党史研究室": "县委党史和文献研究室",
    "党史办": "县委党史和文献研究室",
    "工会": "总工会",
    "红会": "红十字会",
    "政府办": "人民政府办公室",
    "科技局": "科学技术局",
    "工信局": "商务和工业信息化局",
    "商务局": "商务和工业信息化局",
    "商工局": "商务和工业信息化局",
    "统计调查队": "国家统计局调查队",
    "调查队": "国家统计局调查队",
}
# Abbreviations cadres also write without 局/委 ("收回住建的", "配合文旅的"); only those that are no
# ordinary word (应急, 医保, 交通 are, and stay situation words).
BARE_ABBREVIATIONS = {
    "住建": "住房和城乡建设局",
    "人社": "人力资源和社会保障局",
    "文旅": "文化体育广播电视和旅游局",
    "卫健": "卫生健康委员会",
    "市监": "市场监督管理局",
    "市场监管": "市场监督管理局",
    "发改": "发展和改革委员会",
    "林草": "林业和草原局",
    "自规": "自然资源局",
    "工信": "商务和工业信息化局",
}
_TAIL = re.compile(r"及其他.*$")
_BRANCH = re.compile(r"(局).{0,12}?分局$")


def department_key(name: str, places: Iterable[str] = ()) -> str:
    """'吉木萨尔县委组织部' → '县委组织部'; '昌吉州生态环境局吉木萨尔县分局' → '生态环境局'."""
    key = _TAIL.sub("", name.strip())
    for place in sorted(places, key=len, reverse=True):
        base = re.sub(r"(县|市|州|区|旗)$", "", place)
        if len(base) < 2:
            continue
        key = re.sub(re.escape(base) + r"(?:自治县|县|市|回族自治州|自治州|州|地区|区|旗)?", "", key)
    key = re.sub(r"^(?:新疆维吾尔)?自治区", "", key)
    key = _BRANCH.sub(r"\1", key)
    if key.startswith("委"):
        key = "县" + key
    key = re.sub(r"^县(?!委)", "", key)
    return VARIANTS.get(key, key)


def surface_forms(keys: Iterable[str]) -> dict[str, str]:
    """Every way a question may name a loaded department → its key."""
    keys = set(keys)
    forms: dict[str, str] = {}
    for key in keys:
        forms[key] = key
        forms["县" + key] = key
        stem = re.sub(r"(?:局|委员会|委)$", "", key)
        if stem != key and len(stem) >= 2:
            forms.setdefault(stem + "部门", key)  # 生态环境部门, 水利部门
        if key.startswith("县委"):
            forms[key[2:]] = key
            forms["县委" + key[2:]] = key
    for variant, key in VARIANTS.items():
        if key in keys:
            forms[variant] = key
            forms["县" + variant] = key
    for short, key in (ABBREVIATIONS | BARE_ABBREVIATIONS).items():
        if key in keys:
            forms.setdefault(short, key)
            forms.setdefault("县" + short, key)
    return forms
