"""Place hints: the names a resident gives for where the problem is, for matching against grid gazetteers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_CJK = r"[\u4e00-\u9fff]"
# Characters that do not occur inside place names but do sit right before them in speech.
_STOP = "在的了是有我你他她这那个就都也还和与跟到从给把被让向往对里外上下前后旁边附近楼元组门口头说"
_N = rf"[^\W\d_a-zA-Z{_STOP}]"

_COMMUNITY = re.compile(rf"({_N}{{2,8}}(?:小区|花园|家园|公寓|新村|新城|社区|大院|宿舍|苑))")
_ROAD = re.compile(rf"({_N}{{2,8}}(?:大街|大道|路|街|巷|胡同))")
_CROSSING = re.compile(
    rf"({_N}{{2,8}}(?:路|街|大道))(?:和|与|跟|、)({_N}{{2,8}}(?:路|街|大道))(?:交叉口|交口|路口|十字路口)"
)
_BUILDING = re.compile(r"(\d{1,3}|[一二三四五六七八九十]{1,3})\s*(?:号楼|栋|幢|座)")
_UNIT = re.compile(r"(\d{1,2}|[一二三四五六七八九十]{1,2})\s*单元")
_ROOM = re.compile(r"(\d{3,4})\s*(?:室|房|号房)?(?=\D|$)")
_VILLAGE = re.compile(rf"({_N}{{1,6}}(?:村|庄|屯|寨|营))(?:委会)?")
_GROUP = re.compile(r"(\d{1,2}|[一二三四五六七八九十]{1,3})\s*(?:组|队)")
_LANDMARK = re.compile(
    rf"({_N}{{1,8}}(?:公园|广场|市场|菜市场|农贸市场|超市|商场|学校|小学|中学|幼儿园|医院|卫生院|诊所|车站|火车站|汽车站|"
    rf"地铁站|公交站|桥|加油站|银行|派出所|政府|办事处|体育场|体育馆|图书馆|大厦|酒店|宾馆|饭店|工地|厂|河|湖))"
)


@dataclass
class PlaceHint:
    communities: list[str] = field(default_factory=list)
    roads: list[str] = field(default_factory=list)
    crossing: list[str] | None = None
    building: str | None = None
    unit: str | None = None
    villages: list[str] = field(default_factory=list)
    group: str | None = None
    landmarks: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.communities or self.roads or self.crossing or self.building or self.villages or self.landmarks)

    def names(self) -> list[str]:
        """Every name, most specific first, for gazetteer lookups."""
        return [*self.communities, *self.landmarks, *(self.crossing or []), *self.roads, *self.villages]

    def to_dict(self) -> dict[str, object]:
        return {key: value for key, value in self.__dict__.items() if value}


def _clean(name: str) -> str:
    return name.lstrip(_STOP)


def _unique(items: list[str]) -> list[str]:
    out: list[str] = []
    for item in items:
        item = _clean(item)
        if len(item) >= 2 and item not in out and not any(item in other for other in out):
            out = [other for other in out if other not in item] + [item]
    return out


def extract_place_hint(text: str) -> PlaceHint:
    hint = PlaceHint()
    crossing = _CROSSING.search(text)
    if crossing:
        hint.crossing = [_clean(crossing.group(1)), _clean(crossing.group(2))]
    hint.communities = _unique(_COMMUNITY.findall(text))
    hint.roads = [r for r in _unique(_ROAD.findall(text)) if r not in hint.communities]
    hint.villages = _unique(_VILLAGE.findall(text))
    hint.landmarks = [m for m in _unique(_LANDMARK.findall(text)) if m not in hint.communities]
    if (m := _BUILDING.search(text)) is not None:
        hint.building = m.group(0).replace(" ", "")
    if (m := _UNIT.search(text)) is not None:
        hint.unit = m.group(0).replace(" ", "")
    if (m := _GROUP.search(text)) is not None and hint.villages:
        hint.group = m.group(0).replace(" ", "")
    return hint
