"""Question understanding: situation questions, learned intent and relevance, places, figures."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import HashingVectorizer

from assistant.answering.classifier import load_model as load_classifier
from assistant.answering.classifier import situations_digest
from assistant.answering.intent import HEADS, MEANING_HEADS, Head, Meaning, features
from assistant.answering.intent import load_model as load_intent_model
from assistant.answering.ngrams import NGRAMS, char_ngrams
from assistant.answering.places import asked_places, unknown_places
from assistant.answering.query import Catalog, Intent, understand
from assistant.answering.relevance import FEATURES, ModelError, load_model
from assistant.index import ingest
from assistant.index.situations import SITUATIONS_FILE, Entry, SituationsError, inherit, load_entries
from assistant.items import DutyItem, ListKind
from assistant.service import Assistant
from assistant.settings import CORPUS_DIR, Settings
from assistant.titles import match, similarity
from embeddings.cached import CachedEmbedder


def item(title: str, kind: ListKind = ListKind.BASIC, number: int = 1, town: str = "甲镇") -> DutyItem:
    return DutyItem(town, "某县", "", kind, number, "民生服务", title)


# -- titles ----------------------------------------------------------------------------------


def test_titles_match_one_to_one_best_first():
    left = ["“私屠滥宰”执法监管", "农作物秸秆禁烧工作", "殡葬改革"]
    right = ["私屠滥宰执法监管", "农作物秸秆禁烧、综合利用工作", "宗教事务"]
    pairs = match(left, right, str, str)
    assert [(a, b) for a, b, _ in pairs] == [(left[0], right[0]), (left[1], right[1])]
    assert similarity("殡葬改革", "殡葬改革") == 1.0 and similarity("殡葬改革", "宗教事务") == 0.0


# -- situation questions -------------------------------------------------------------------


def test_every_duty_of_the_shipped_lists_has_situation_questions(items):
    entries = load_entries()
    inherited = inherit(items, entries)
    assert all(e is not None and len(e.questions) >= 5 for e in inherited), "a shipped duty has < 5 situation questions"
    assert len({(e.list, e.title) for e in entries}) == len(entries)


def test_a_duty_inherits_by_title_within_its_list_and_across_only_when_nearly_unchanged():
    entries = [Entry(ListKind.COORDINATED, "“私屠滥宰”执法监管", ("有人在家杀羊卖肉",))]
    same_list = item("私屠滥宰执法监管", ListKind.COORDINATED)
    moved = item("“私屠滥宰”执法监管", ListKind.WITHDRAWN)
    other = item("殡葬改革工作", ListKind.COORDINATED)
    assert [e.questions if e else () for e in inherit([same_list, moved, other], entries)] == [
        ("有人在家杀羊卖肉",),
        ("有人在家杀羊卖肉",),
        (),
    ]


def test_a_malformed_situations_line_names_file_and_line(tmp_path):
    path = tmp_path / "situations.jsonl"
    path.write_text('{"list": "basic", "title": "甲", "questions": ["问"]}\n{"list": "other"}\n', encoding="utf-8")
    with pytest.raises(SituationsError, match=r"situations.jsonl:2"):
        load_entries(path)


@pytest.fixture(scope="module")
def renamed(tmp_path_factory, assistant):
    """A new township: 二工镇's list under another name, ingested on its own."""
    folder = tmp_path_factory.mktemp("renamed")
    text = (CORPUS_DIR / "二工镇.txt").read_text(encoding="utf-8").replace("二工镇", "新户镇")
    (folder / "新户镇.txt").write_text(text, encoding="utf-8")
    settings = Settings(home=folder / "home", corpus=[folder], vector_cache=assistant.settings.vector_cache)
    embedder = CachedEmbedder.from_collection(assistant.kb.embedder, assistant.kb.collection)
    report = ingest([folder], settings, embedder=embedder)
    assert report.ok, report.errors
    return Assistant.open(settings, build=False)


def test_a_new_townships_list_inherits_the_situation_questions(renamed):
    retriever = renamed.retriever
    assert retriever.situations.has.all(), "every item of the renamed list should inherit its duty's questions"
    entry = next(e for e in load_entries() if e.title == "“私屠滥宰”执法监管")
    answer = renamed.ask(entry.questions[0])
    assert [i.id for i in answer.citations] == ["新户镇:coordinated:22"]


# -- learned models --------------------------------------------------------------------------


def test_the_shipped_models_load_and_fit_the_code(assistant):
    relevance, intent, duties = load_model(), load_intent_model(), load_classifier()
    assert relevance is not None and relevance.features == FEATURES and 0 < relevance.threshold < 1
    assert intent is not None and set(intent.heads) == set(HEADS)
    assert intent.embedder == assistant.kb.embedder.name and intent.mean_vector is not None
    text_features = len(intent.heads["place"].weights)
    for name in MEANING_HEADS:  # the text features, then the question's vector
        assert len(intent.heads[name].weights) == text_features + assistant.kb.embedder.dimension
    assert duties is not None and duties.situations == situations_digest(), "refit with `duty-assistant train`"
    assert duties.keys == tuple(e.key for e in load_entries()) and duties.embedder == assistant.kb.embedder.name


def test_the_duty_classifier_scores_every_item_through_its_entry(assistant, renamed):
    for retriever in (assistant.retriever, renamed.retriever):
        assert retriever.classifier is not None and (retriever._class_of >= 0).all()
    entry = next(e for e in load_entries() if e.title == "“私屠滥宰”执法监管")
    probabilities = load_classifier().probabilities(
        assistant.kb.embedder.embed_query("邻居在自家后院杀羊往外卖"), "邻居在自家后院杀羊往外卖"
    )
    assert np.isclose(probabilities.sum(), 1.0) and load_classifier().keys[int(probabilities.argmax())] == entry.key


def test_a_classifier_fitted_on_another_embedders_vectors_is_not_used(assistant):
    retriever = assistant.retriever
    shipped = retriever.classifier
    try:
        retriever.use_classifier(replace(shipped, embedder="another-model"))
        assert retriever.classifier is None and (retriever._class_of == -1).all()
        assert retriever.search(understand("有人在自家院里杀羊卖肉", retriever.catalog))  # still answers
    finally:
        retriever.use_classifier(shipped)


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), st.sampled_from([2**10, 2**13, 2**14]))
def test_the_models_text_features_are_scikit_learns_hashed_ngrams(text, n_features):
    """Training uses scikit-learn; answering must compute the very same features without it."""
    reference = HashingVectorizer(
        analyzer="char", ngram_range=NGRAMS, n_features=n_features, alternate_sign=False, norm="l2"
    )
    assert np.allclose(char_ngrams(text, n_features).toarray(), reference.transform([text]).toarray())


def test_a_model_trained_on_other_features_is_refused(tmp_path):
    data = load_model().to_dict()
    data["features"] = data["features"][:-1]
    path = tmp_path / "relevance.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ModelError, match="relevance.json"):
        load_model(path)


@pytest.mark.parametrize(
    "question",
    [
        "第一书记说村里有人私自宰羊，镇里该管吗？",
        "好几个村民来反映有人在河边烧麦草，找谁？",
        "所有村民都说那条水渠该修了，镇上管不管？",
        "我头一回养羊，防疫针镇上有人来打吗？",
    ],
)
def test_cue_words_inside_situations_do_not_make_a_set_or_a_lookup(assistant, question):
    query = understand(question, assistant.retriever.catalog)
    assert query.intent is Intent.SINGLE and query.number is None


@pytest.mark.parametrize(
    ("question", "intent"),
    [
        ("二工镇配合履职事项第22项是什么？", Intent.LOOKUP),
        ("列出二工镇所有应急管理及消防类事项", Intent.ENUMERATE),
        ("半截沟镇有多少项收回事项？", Intent.COUNT),
        ("二工镇有哪些配合履职事项是半截沟镇没有的？", Intent.COMPARE),
    ],
)
def test_set_lookup_and_comparison_questions_keep_their_intent(assistant, question, intent):
    assert understand(question, assistant.retriever.catalog).intent is intent


def test_spoken_comparisons_are_comparisons_of_the_topic():
    query = understand("村里农药瓶子越来越多了，俩镇在农药包装回收上都管些啥？", Catalog())
    assert query.cues["both_towns"] == 1.0 and query.compare_mode == "diff"  # not "only": 越来越多了


@pytest.mark.parametrize(
    ("question", "mode"),
    [
        ("妇联组织建设，两个镇有没有差别？", "diff"),  # 有没有 asks, it does not say one side lacks
        ("党管人才，这两个镇有啥区别没有？", "diff"),
        ("二工和半截沟在湿地保护上没有不同吧", "diff"),
        ("二工镇有而半截沟镇没有的收回事项", "only"),
        ("半截沟镇有哪些事项是二工镇没有的？", "only"),
        ("二工比半截沟多出哪些配合事项？", "only"),
        ("没有营业执照就开店卖东西，两个镇管法有什么不同？", "diff"),  # the situation lacks, not a township
        ("老人九十多了领的补贴，两个镇有什么不同？", "diff"),
    ],
)
def test_a_yes_no_comparison_is_not_a_question_about_what_one_side_lacks(assistant, question, mode):
    query = understand(question, assistant.retriever.catalog, learned=False)
    assert query.intent is Intent.COMPARE and query.compare_mode == mode


def test_the_townships_own_part_set_against_the_part_it_assists_filters_no_list(assistant):
    catalog = assistant.retriever.catalog
    across = understand("人大这块，二工镇和半截沟镇哪些自己办、哪些配合县人大？", catalog)
    assert across.intent is Intent.COMPARE and not across.lists
    assert "自己" not in across.topic, "the own part is a list's frame, as 配合 is: neither stays in the subject"
    result = assistant.retrieve("人大这块，二工镇和半截沟镇哪些自己办、哪些配合县人大？")
    assert {item.list for item in result.cited} == {ListKind.BASIC, ListKind.COORDINATED}
    assert understand("二工镇配合县水利局的事项有哪些", catalog).lists == (ListKind.COORDINATED,)


def test_a_department_is_a_comparisons_filter_only_when_nothing_else_is_compared(assistant):
    catalog = assistant.retriever.catalog
    subject = understand("工会这摊子事，维护职工权益、推荐劳模，两个镇各负责到什么程度？", catalog)
    assert subject.intent is Intent.COMPARE and not subject.departments and "工会" in subject.topic
    whole = understand("两个镇跟县委宣传部沾边的配合事项都有啥？", catalog)
    assert whole.intent is Intent.ENUMERATE and whole.departments


def test_a_compared_subject_is_compared_whole_whatever_list_or_department_is_named(assistant):
    catalog = assistant.retriever.catalog
    subject = understand("两个镇的河长制和河道管理有什么不同？处罚是不是收回县水利局了？", catalog)
    assert subject.intent is Intent.COMPARE and not subject.lists and not subject.departments
    assert "河道" in subject.topic and "水利局" in subject.topic
    named = understand("两个镇的河道管理，收回事项里有什么不同？", catalog)
    assert named.lists == (ListKind.WITHDRAWN,)
    whole_set = understand("县水利局收回的那些事项，两个镇是不是一样？请对比。", catalog)
    assert whole_set.intent is Intent.COMPARE and whole_set.lists == (ListKind.WITHDRAWN,) and whole_set.departments


def test_a_comparison_with_no_subject_left_compares_the_whole_filtered_set(assistant, items):
    """What is left beside the filters is the asker's own wording ("请对比", "是不是完全"): no
    word of it is in the lists or their situation questions, so it narrows nothing."""
    catalog = assistant.retriever.catalog
    expected = {
        i.id
        for i in items
        if i.list is ListKind.WITHDRAWN and "民政局" in {catalog.department_key(d) for d in i.involved_departments}
    }
    result = assistant.retrieve("县民政局收回的那些事项，两个镇是不是完全一样？请对比。")
    assert result.compared and {i.id for i in result.cited} == expected and len(expected) > 4


def test_asking_whether_two_sets_are_the_same_shows_every_pair_and_what_one_side_has_alone(assistant, items):
    catalog = assistant.retriever.catalog
    expected = {
        i.id
        for i in items
        if i.list is ListKind.WITHDRAWN
        and "人力资源和社会保障局" in {catalog.department_key(d) for d in i.involved_departments}
    }
    answer = assistant.ask("两个镇收回到县人社局的事项是不是一样？")
    result = answer.retrieval
    assert result.query.compare_mode == "all" and {i.id for i in result.cited} == expected
    assert result.only and result.pairs and "两镇的对应事项" in answer.text
    common = assistant.retrieve("两个镇收回到县人社局的事项都有哪些是共同的？")
    assert not common.only and {i.id for p in common.pairs for i in (p.left, p.right)} < expected


def test_a_set_questions_topic_keeps_whole_words(assistant):
    query = understand("县司法局想了解：两镇的公共法律服务和司法所建设有什么不同", assistant.retriever.catalog)
    assert "公共法律服务" in query.topic and "司法所建设" in query.topic
    assert "不同" not in query.topic and "两镇" not in query.topic


def test_a_yes_no_comparison_of_a_topic_cites_both_townships_items(assistant):
    result = assistant.retrieve("妇联组织建设，两个镇有没有差别？")
    assert {item.town for item in result.cited} == {"二工镇", "半截沟镇"} and result.pairs
    assert all("妇" in pair.left.title and "妇" in pair.right.title for pair in result.pairs)


def test_a_compared_figure_is_declined_like_a_single_one(assistant):
    answer = assistant.ask("二工镇和半截沟镇的低保标准每人每月各是多少钱，哪个镇高？")
    assert answer.abstained and not answer.citations and answer.retrieval.scope == "figure"
    assert answer.related and "救助" in answer.related[0].title


def test_relevance_orders_candidates_by_probability(assistant):
    hits = assistant.retrieve("有人在自家院里杀羊卖肉，镇上管不管？").hits
    probabilities = [h.relevance for h in hits]
    assert probabilities == sorted(probabilities, reverse=True)
    assert hits[0].item.title.endswith("私屠滥宰”执法监管") and hits[0].relevant
    assert all(h.features is not None and h.features.shape == (len(FEATURES),) for h in hits)


# -- honest out-of-scope answers -------------------------------------------------------------


KNOWN = ("二工镇", "二工", "半截沟镇", "半截沟", "吉木萨尔县", "吉木萨尔", "奇台县", "奇台", "昌吉回族自治州", "昌吉州")


@pytest.mark.parametrize(
    ("question", "place"),
    [
        ("三台镇有人私自宰羊归谁管？", "三台镇"),
        ("乌鲁木齐市天山区的老旧小区改造谁负责？", "天山区"),
        ("木垒那边秸秆禁烧是谁负责？", "木垒哈萨克自治县"),
        ("甘肃张掖老家的土地纠纷找乡里有用吗？", "张掖市"),
        ("七户乡村里要建公墓，谁负责？", "七户乡"),  # jieba reads 七户/乡村/里
        ("老奇台镇的殡葬补助怎么办？", "老奇台镇"),  # holds 奇台, a known place
        ("泉子街那边的人民调解谁管？", "泉子街镇"),  # a short form, in the loaded lists' province
        ("河北正定县西平乐乡的耕地谁管", "西平乐乡"),
    ],
)
def test_places_without_a_list_are_found(question, place):
    assert place in asked_places(question, KNOWN)


@pytest.mark.parametrize(
    "question",
    [
        "二工镇有人私自宰羊，镇里该做什么？",
        "我们乡镇的秸秆禁烧归谁",
        "城乡居民医保在镇上交吗",
        "全镇各乡都要搞吗",
        "今年要争创文明村镇，材料谁准备？",  # 明村镇 is a township's name, inside 文明
        "平安乡镇创建的台账谁来做？",  # 平安乡 is a township's name, inside 平安/乡镇
        "村里集体的老厂房谁来管？",  # 村里集(镇) across 村里/集体
        "第二天水还发黑，报给谁？",  # 天水 across 第二天/水
        "年底镇领导班子述职测评，谁组织？",
        "火车站附近有人卖假酒，镇上管吗？",  # 火车站(镇): jieba knows it as a common noun
    ],
)
def test_the_loaded_places_and_ordinary_words_are_not_unknown_places(question):
    assert asked_places(question, KNOWN) == []


def test_a_place_in_a_background_sentence_is_not_the_place_asked_about():
    story = "我表哥在乌鲁木齐上的大学，学的畜牧兽医。他想回来发展，镇上有没有负责引进人才的？"
    assert unknown_places(story, KNOWN) == ["乌鲁木齐市"]
    assert asked_places(story, KNOWN) == []


def test_a_story_keeps_its_place_unless_the_asking_sentence_is_set_at_home():
    assert "张掖市" in asked_places("我老家在甘肃张掖。那边的土地纠纷找乡里有用吗？", KNOWN)
    assert asked_places("村里来了个人。三台镇有人私自宰羊归谁管？", KNOWN) == ["三台镇"]
    assert asked_places("我家在阜康市九运街镇，房子被泥石流冲了。找谁安置？能领啥补助？", KNOWN) != []


def test_a_place_the_lists_mention_is_not_unknown():
    assert unknown_places("疏勒古城的保护归谁管？", KNOWN, mentioned="负责疏勒古城遗址保护") == []


def test_a_township_without_a_list_is_answered_honestly(assistant):
    answer = assistant.ask("三台镇有人私自宰羊归谁管？")
    assert answer.abstained and not answer.citations and answer.retrieval.scope == "place"
    assert "三台镇" in answer.text and all(t in answer.text for t in assistant.kb.towns)
    assert answer.related, "the loaded townships' nearest items are shown as related"


@pytest.mark.parametrize(
    "question",
    [
        "我老家河南那边村里的路坏了是县交通局来修，这边村里的路坏了是镇上负责修补吗？",
        "在乌鲁木齐低保是社区先审，咱们这边低保申请是镇上受理吗？",
    ],
)
def test_a_place_named_only_as_a_contrast_does_not_decline_the_question(assistant, question):
    answer = assistant.ask(question)
    assert answer.retrieval.query.unknown_places, "the other place is still found"
    assert not answer.abstained and answer.citations


def test_a_place_with_no_list_asked_about_beside_a_loaded_township_is_declined(assistant):
    answer = assistant.ask("我们二工镇有老年食堂，那昌吉市的街道也管老年人助餐吗？")
    assert answer.abstained and not answer.citations and answer.retrieval.scope == "place"


def test_without_the_learned_model_a_place_with_no_list_counts_unless_a_loaded_one_is_named(assistant):
    catalog = assistant.retriever.catalog
    assert understand("昌吉市的低保谁审批？", catalog, learned=False).unlisted_place
    assert not understand("二工镇的人去昌吉市打工，低保谁审批？", catalog, learned=False).unlisted_place


def test_a_figure_the_lists_do_not_hold_points_to_the_responsible_item(assistant):
    answer = assistant.ask("低保一个月能领多少钱？")
    assert answer.abstained and not answer.citations and answer.retrieval.scope == "figure"
    assert "金额" in answer.text and answer.related


def test_a_service_no_list_covers_is_declined(assistant):
    answer = assistant.ask("办护照要去哪里，需要带什么？")
    assert answer.abstained and not answer.citations


def test_the_figure_and_service_heads_read_the_meaning_of_single_item_questions_only(assistant):
    retriever = assistant.retriever
    read: list[str] = []

    def vector(text: str) -> np.ndarray:
        read.append(text)
        return retriever.question_vector(text)

    catalog = replace(retriever.catalog, meaning=Meaning(assistant.kb.embedder.name, vector))
    understand("二工镇办护照要去哪里？", catalog)
    assert read == ["办护照要去哪里？"]  # the searched text, as retrieval embeds it
    understand("二工镇的收回事项有哪些？", catalog)
    understand("二工镇有多少项配合事项？", catalog)
    understand("二工镇和半截沟镇的低保标准有什么不同？", catalog)
    assert len(read) == 1  # a set question, compared or not, embeds nothing for them
    other = replace(catalog, meaning=Meaning("another-model", vector))
    understand("办护照要去哪里？", other)
    assert len(read) == 1  # nor does an embedder they were not trained with: they read the mean vector


def test_a_question_is_embedded_once_though_read_twice(assistant, monkeypatch):
    embedder = assistant.kb.embedder
    calls: list[str] = []
    monkeypatch.setattr(
        embedder, "embed_query", lambda text: calls.append(text) or type(embedder).embed_query(embedder, text)
    )
    assistant.ask("邻居家新来的租户一直没去登记，归谁管？")
    assert len(calls) == 1
    assistant.ask("两个镇在河长制上有什么不同？")
    assert len(calls) == 2 and "河长制" in calls[1]  # a comparison embeds its topic alone


def test_a_head_reads_the_vector_after_its_text_features_and_only_if_it_has_weights_for_it():
    row = features(["办护照"], [{}])
    width, vector = row.shape[1], np.ones(4)
    meaning = Head(np.concatenate([np.zeros(width), np.ones(4)]), bias=-1.0, threshold=0.5)
    assert meaning.asks(row, vector) and not meaning.asks(row, -vector) and not meaning.asks(row)
    text_only = Head(np.zeros(width), bias=1.0, threshold=0.5)
    assert text_only.asks(row, -vector) and text_only.asks(row)


def test_answers_record_which_models_answered(assistant):
    models = assistant.ask("村里有人私自宰羊，镇里该做什么？").meta["models"]
    assert models["relevance"] == load_model().version and models["intent"] == load_intent_model().version
    assert models["duties"] == load_classifier().version


def test_situation_vectors_are_cached_by_text(assistant, tmp_path):
    from assistant.index.situations import cached_vectors

    texts = ["有人在家杀羊卖肉的测试句", "地里有人烧麦草的测试句"]
    first = cached_vectors(texts, assistant.kb.embedder, tmp_path)
    assert len(list(tmp_path.glob("situations-*.npz"))) == 1
    again = cached_vectors(texts, assistant.kb.embedder, tmp_path)
    assert np.allclose(first, again, atol=1e-3) and first.shape == (2, assistant.kb.embedder.dimension)
    direct = assistant.kb.embedder.embed_queries(texts)
    assert np.allclose(first, direct, atol=1e-3)


def test_the_shipped_vectors_are_the_embedders_own(assistant):
    from assistant.index.situations import SHIPPED_VECTORS, _load_vectors

    shipped = _load_vectors(SHIPPED_VECTORS, assistant.kb.embedder.name)
    texts = list(dict.fromkeys(q for entry in load_entries() for q in entry.questions))
    assert set(texts) <= set(shipped), "refresh them with `duty-assistant train`"
    sample = texts[::300]
    assert np.allclose(np.stack([shipped[t] for t in sample]), assistant.kb.embedder.embed_queries(sample), atol=2e-3)
    assert SITUATIONS_FILE.exists()


@pytest.mark.parametrize(
    "question",
    [
        "我家承包地被村里收回给别人种了，找谁？",
        "有人从外地送回来一个要饭的，镇上收不收？",
        "镇上收发文件这种活是哪项工作？",
    ],
)
def test_list_verbs_in_a_situation_do_not_filter_the_lists(assistant, question):
    assert understand(question, assistant.retriever.catalog).lists == ()


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("二工镇收回事项里哪项管婚姻证明？", ListKind.WITHDRAWN),
        ("半截沟镇配合履职事项中的秸秆禁烧", ListKind.COORDINATED),
    ],
)
def test_a_lists_name_filters_a_single_item_question(assistant, question, kind):
    assert understand(question, assistant.retriever.catalog).lists == (kind,)


def test_list_verbs_still_filter_sets(assistant):
    assert understand("二工镇收回了哪些事项？", assistant.retriever.catalog).lists == (ListKind.WITHDRAWN,)
