"""The classifier engine on a small fixture rule set: exclusions, negation, combos, non-reports, reload."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifier.engine import Classifier
from classifier.rules import load_rules
from tests.conftest import fixture_rules


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    rules = fixture_rules(tmp_path_factory.mktemp("rules"))
    return Classifier.load(rules_dir=rules, cache_dir=tmp_path_factory.mktemp("jieba"))


def sub(model: Classifier, text: str) -> str | None:
    return model.classify(text).subcategory


@pytest.mark.parametrize(
    "text",
    ["火车站门口人太多了，太乱", "最近上火了嗓子疼，太难受了", "楼下火锅店太吵了"],
)
def test_fire_in_other_words_is_not_fire(model: Classifier, text: str) -> None:
    assert sub(model, text) != "C01"


def test_fire_as_a_word_is_fire(model: Classifier) -> None:
    result = model.classify("3号楼楼道里着火了，冒烟")
    assert result.subcategory == "C01" and result.urgent is True
    assert set(result.keywords) >= {"着火", "冒烟"}


def test_well_in_a_road_name_is_not_a_manhole(model: Classifier) -> None:
    assert sub(model, "井冈山路那边太吵了，噪音") == "E02"
    assert sub(model, "路边的井盖被偷了") == "D01"


def test_missed_property_fee_is_not_a_leak(model: Classifier) -> None:
    result = model.classify("物业说我漏交物业费，不给我开门禁")
    assert result.subcategory == "A05"
    assert "漏" not in result.keywords


def test_negated_category_does_not_count(model: Classifier) -> None:
    result = model.classify("不是噪音问题，是楼上漏水渗到我家")
    assert result.subcategory == "A01"
    assert "噪音" not in result.keywords
    # without the negation, noise wins
    assert sub(model, "楼上噪音，吵死了，噪音") == "E02"


def test_combo_needs_its_words_close_together(model: Classifier) -> None:
    assert sub(model, "楼下那个盖子没了") == "D01"
    assert model.classify("盖子我昨天买的，今天去超市转了一大圈回来发现钱包没了").subcategory != "D01"


def test_combo_for_gas_smell(model: Classifier) -> None:
    result = model.classify("楼道里闻到一股怪味，像燃气")
    assert result.subcategory == "C03" and "闻到+味" in result.keywords


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("。。。", "empty"),
        ("👍👍", "empty"),
        ("你好", "greeting"),
        ("在吗？", "greeting"),
        ("谢谢网格员", "thanks"),
        ("好的，收到", "thanks"),
        ("这个公众号怎么上报问题啊", "howto"),
        ("兼职刷单日赚300加微信", "ad"),
        ("测试", "test"),
        ("asdfghjkl", "unclear"),
        ("今天天气不错", "unclear"),
    ],
)
def test_non_reports_get_no_case(model: Classifier, text: str, reason: str) -> None:
    result = model.classify(text)
    assert result.is_report is False and result.subcategory is None
    assert result.reason == reason


def test_a_vague_complaint_is_a_low_confidence_report_for_review(model: Classifier) -> None:
    result = model.classify("我们小区那个东西坏了好几天了，没人管")
    assert result.is_report is True and result.subcategory == "H08"
    assert result.confidence < 0.5


def test_confidence_grows_with_evidence_and_alternatives_are_ranked(model: Classifier) -> None:
    weak = model.classify("有点漏水")
    strong = model.classify("井盖没了，井盖被偷了，井盖")
    assert 0 <= weak.confidence < strong.confidence <= 1
    mixed = model.classify("楼上漏水，还停水了，噪音也大")
    assert mixed.alternatives and all(a.score > 0 for a in mixed.alternatives)
    scores = [a.score for a in mixed.alternatives]
    assert scores == sorted(scores, reverse=True)


def test_full_width_text_is_normalised(model: Classifier) -> None:
    assert sub(model, "井盖没了！！") == sub(model, "井盖没了!!") == "D01"


def test_place_hints_come_with_the_result(model: Classifier) -> None:
    hint = model.classify("华兴小区3号楼2单元门口井盖没了").place_hint
    assert hint.communities == ["华兴小区"] and hint.building == "3号楼" and hint.unit == "2单元"
    crossing = model.classify("育才街和胜利北大街交叉口井盖没了").place_hint
    assert crossing.crossing == ["育才街", "胜利北大街"]
    village = model.classify("王家庄村3组路边井盖没了").place_hint
    assert village.villages == ["王家庄村"] and village.group == "3组"


def test_reload_swaps_rules_without_reloading_jieba(model: Classifier, tmp_path: Path) -> None:
    edited = fixture_rules(tmp_path / "rules")
    (edited / "E.yaml").write_text(
        "category: E\nsubcategories:\n  E06:\n    keywords:\n      噪音: 4\n", encoding="utf-8"
    )
    reloaded = model.with_rules(load_rules(edited))
    assert reloaded.tokenizer is model.tokenizer
    assert sub(reloaded, "噪音很大") == "E06"
    assert sub(model, "噪音很大") == "E02"


def test_a_question_with_shi_bu_shi_negates_nothing(model: Classifier) -> None:
    assert model.classify("楼道里是不是着火了").subcategory == "C01"
    assert model.classify("不是着火，是楼上太吵").subcategory == "E02"


def test_ads_and_forwarded_articles_are_not_reports_whatever_they_name(model: Classifier) -> None:
    ad = model.classify("专业疏通井盖下水道，24小时上门，电话139****5678")
    assert (ad.is_report, ad.reason) == (False, "ad")
    forwarded = model.classify("转给大家看看：着火了怎么逃生👇👇")
    assert (forwarded.is_report, forwarded.reason) == (False, "forward")


def test_a_resident_reporting_an_ad_or_a_scam_is_a_report(model: Classifier) -> None:
    result = model.classify("小区电梯里贴满了疏通井盖24小时上门的小广告，我要举报")
    assert result.is_report and result.reason is None


def test_a_stove_that_will_not_light_is_not_an_urgent_fire(model: Classifier) -> None:
    assert model.classify("楼道里着火了").urgent
    stove = model.classify("停水了，热水器也打不着火")
    assert stove.subcategory == "D05" and not stove.urgent


def test_a_contrast_ends_the_negation_at_its_shi(model: Classifier) -> None:
    # 不是A是B: A is denied, B is what happened
    result = model.classify("不是噪音是楼上漏水渗到我家")
    assert result.subcategory == "A01"
    assert "噪音" not in result.keywords and "漏水" in result.keywords


def test_a_rhetorical_question_denies_nothing(model: Classifier) -> None:
    assert model.classify("这不是着火了吗？快来人").subcategory == "C01"
    assert model.classify("这不是着火了吗").subcategory == "C01"


def test_patterns_match_the_normalised_text_so_a_comma_still_ends_a_clause(tmp_path: Path) -> None:
    rules = fixture_rules(tmp_path / "rules")
    common = rules / "_common.yaml"
    lottery = "nonreport_always:\n  lottery:\n    - '彩票[^，。]{0,10}私'\n"
    common.write_text(common.read_text(encoding="utf-8").replace("nonreport_always:\n", lottery, 1), encoding="utf-8")
    local = Classifier.load(rules_dir=rules, cache_dir=tmp_path / "jieba")
    assert local.classify("彩票兼职私聊").reason == "lottery"
    # the full-width comma becomes "," under NFKC; the pattern's [^，] is normalised the same way and stops there
    assert local.classify("楼下开了家彩票店，老板私下收码，井盖也被偷了").reason != "lottery"


def test_a_combo_word_inside_its_exclusion_context_does_not_count(tmp_path: Path) -> None:
    rules = fixture_rules(tmp_path / "rules")
    d_rules = rules / "D.yaml"
    d_rules.write_text(
        d_rules.read_text(encoding="utf-8").replace(
            "        weight: 3\n", "        weight: 3\n    exclude:\n      没了: [没了吗]\n", 1
        ),
        encoding="utf-8",
    )
    local = Classifier.load(rules_dir=rules, cache_dir=tmp_path / "jieba")
    assert local.classify("楼下那个盖子没了").subcategory == "D01"
    assert local.classify("楼下那个盖子没了吗").subcategory != "D01"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("【停水通知】因管网维修，幸福里小区12月5日停水，请提前储水。特此通知。", "forward"),
        ("通知 各位村民：村委会本月15日召开村民代表大会", "forward"),
        ("转发一下，说是今晚井盖要统一更换", "forward"),
        ("燃气灶维修清洗 价格透明 随叫随到 电话同微信", "ad"),
        ("我要投诉！", "vague"),
        ("有个事想找你们", "vague"),
        ("不用了已经好了谢谢", "conversation"),
        ("匿名反映可以吗？", "howto"),
        ("新年快乐！祝网格员们身体健康", "greeting"),
    ],
)
def test_notices_ads_empty_requests_and_replies_are_not_reports(model: Classifier, text: str, reason: str) -> None:
    result = model.classify(text)
    assert (result.is_report, result.reason) == (False, reason)


def test_a_resident_describing_a_scam_by_private_message_is_not_an_ad(model: Classifier) -> None:
    # 私信我 at the end of an ad is an ad; a resident telling how a scammer messaged them is not
    assert model.classify("有需要的私信我").reason == "ad"
    assert model.classify("有人在抖音上私信我，说能退款，让我先转账").reason != "ad"
