from assistant.answering.answer import compose, describe
from assistant.answering.citations import MARKER, marker_id


def test_coordinated_answer_says_what_the_township_does_and_who_leads(assistant):
    answer = assistant.ask("二工镇有人私自宰羊，镇里该做什么？")
    item = assistant.kb.by_id["二工镇:coordinated:22"]
    assert answer.citations[0] == item
    assert "〔二工镇·配合履职·第22项〕" in answer.text
    assert "吉木萨尔县农业农村局牵头" in answer.text
    assert item.township_duties[-1] in answer.text
    assert not answer.abstained


def test_withdrawn_answer_says_it_is_no_longer_the_townships(assistant):
    answer = assistant.ask("半截沟镇还能开婚姻状况证明吗？")
    assert [c.id for c in answer.citations] == ["半截沟镇:withdrawn:2"]
    assert "不再由乡镇承担" in answer.text and "奇台县民政局" in answer.text


def test_basic_answer_says_the_township_does_it_itself(assistant):
    item = assistant.kb.by_id["二工镇:basic:104"]
    assert "由乡镇自己负责" in describe(item) and item.citation in describe(item)


def test_long_step_lists_are_shortened_with_a_pointer(assistant):
    item = max(assistant.kb.items, key=lambda i: len(i.department_duties))
    text = describe(item, steps=2)
    assert f"另有{len(item.department_duties) - 2}项" in text


def test_abstention_cites_nothing_and_keeps_related_apart(assistant):
    answer = assistant.ask("怎么在网上买火车票？")  # a service no list covers: declined, nearest items apart
    assert answer.abstained and answer.citations == [] and "无法依据清单回答" in answer.text
    record = answer.to_json()
    assert record["citations"] == [] and [r["title"] for r in record["related"]] == [i.title for i in answer.related]


def test_related_items_are_written_out_without_citation_markers(assistant):
    answer = assistant.ask("低保一个月能领多少钱？")  # the text refers to 相关事项
    assert answer.abstained and answer.related and "相关事项" in answer.text
    extra = answer.full_text().removeprefix(answer.text)
    assert all(f"第{item.number}项「{item.title}」" in extra for item in answer.related)
    assert not MARKER.search(answer.full_text()), "a client sending the text back would cite them"


def test_an_answered_question_shows_no_related_items(assistant):
    answer = assistant.ask("村里有人私自宰羊，镇里该做什么？")
    assert answer.citations and answer.related == [] and answer.full_text() == answer.text


def test_set_answer_cites_every_item_and_states_the_count(assistant):
    answer = assistant.ask("列出二工镇的收回事项")
    assert len(answer.citations) == 30 and "共30项" in answer.text
    assert all(item.citation in answer.text for item in answer.citations)


def test_answer_cites_only_retrieved_items(assistant):
    for question in ["村里的低保谁来审核？", "哪些事项涉及秸秆", "两个镇的收回事项有什么不同"]:
        retrieval = assistant.retrieve(question)
        answer = compose(question, retrieval)
        assert {c.id for c in answer.citations} <= {i.id for i in retrieval.cited}
        markers = {marker_id(m) for m in MARKER.finditer(answer.text)}
        assert answer.citations and markers == {c.id for c in answer.citations}, "every citation is shown, nothing else"


def test_json_contract(assistant):
    record = assistant.ask("二工镇配合履职事项第22项").to_json()
    assert set(record) >= {"question", "answer", "citations", "abstained"}
    assert record["citations"] == [
        {"town": "二工镇", "county": "吉木萨尔县", "list": "coordinated", "number": 22, "title": "“私屠滥宰”执法监管"}
    ]
