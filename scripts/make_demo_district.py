"""Generate the Gridbot demo district: handlers/demo_data/district.geojson and people.yaml.

Deterministic (fixed seed, no network). Run: .venv/bin/python scripts/make_demo_district.py
"""

import base64
import hashlib
import itertools
import json
import math
import random
from pathlib import Path

import shapely
import yaml
from shapely.geometry import Point, Polygon
from shapely.geometry.polygon import orient

OUT = Path(__file__).resolve().parent.parent / "handlers" / "demo_data"
rng = random.Random(20240605)

# Local equirectangular projection (metres) around the district centre.
LNG0, LAT0 = 114.54, 38.05
KY = 6371008.8 * math.pi / 180  # metres per degree latitude
KX = KY * math.cos(math.radians(LAT0))  # metres per degree longitude
WEST, EAST, SOUTH, NORTH = 114.52, 114.56, 38.04, 38.065
COLS, ROWS = 5, 4  # 5 x 4 cells = 20 base grids


def to_lnglat(x, y):
    return (round(LNG0 + x / KX, 6), round(LAT0 + y / KY, 6))


def area_km2(geom):
    return shapely.transform(geom, lambda c: (c - [LNG0, LAT0]) * [KX, KY]).area / 1e6


# ---- lattice of shared vertices: V[j][i], j = row line (0 = north), i = column line (0 = west)
x0, y0 = (WEST - LNG0) * KX, (NORTH - LAT0) * KY
dx, dy = (EAST - WEST) * KX / COLS, (NORTH - SOUTH) * KY / ROWS
V_m = {}
for j in range(ROWS + 1):
    for i in range(COLS + 1):
        x, y = x0 + i * dx, y0 - j * dy
        on_ns, on_we = j in (0, ROWS), i in (0, COLS)
        if not on_ns and not on_we:  # interior: jitter up to 60 m in any direction
            r, a = 60 * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
            x, y = x + r * math.cos(a), y + r * math.sin(a)
        elif on_ns and not on_we:  # north/south border: slide along the border
            x += rng.uniform(-60, 60)
        elif on_we and not on_ns:  # west/east border: slide along the border
            y += rng.uniform(-60, 60)
        V_m[j, i] = (x, y)  # corners stay fixed
V = {k: to_lnglat(*p) for k, p in V_m.items()}


def bend(a, b, max_off):
    """Optional intermediate vertex on edge a->b (a kink like a real street), stored once per edge."""
    if rng.random() < 0.45:
        return []
    t, off = rng.uniform(0.35, 0.65), rng.uniform(-max_off, max_off)
    (ax, ay), (bx, by) = a, b
    length = math.hypot(bx - ax, by - ay)
    nx, ny = -(by - ay) / length, (bx - ax) / length
    return [to_lnglat(ax + t * (bx - ax) + off * nx, ay + t * (by - ay) + off * ny)]


# Canonical edge directions: horizontal west->east, vertical north->south.
H = {(j, i): bend(V_m[j, i], V_m[j, i + 1], 12 if j in (0, ROWS) else 25) for j in range(ROWS + 1) for i in range(COLS)}
Vt = {
    (j, i): bend(V_m[j, i], V_m[j + 1, i], 12 if i in (0, COLS) else 25) for j in range(ROWS) for i in range(COLS + 1)
}


def cell(r, c):
    """Counter-clockwise ring of cell (row r from north, column c from west)."""
    ring = [
        V[r + 1, c],
        *H[r + 1, c],
        V[r + 1, c + 1],
        *reversed(Vt[r, c + 1]),
        V[r, c + 1],
        *reversed(H[r, c]),
        V[r, c],
        *Vt[r, c],
    ]
    return Polygon(ring + ring[:1])


# ---- administrative tree and place names
DISTRICT = ("130102", "长安区（演示）", ["长安区", "长安区政府"])
STREETS = [
    ("130102001", "建北街道", ["建北街道", "建北街道办事处", "建北"]),
    ("130102002", "青园街道", ["青园街道", "青园街道办事处", "青园"]),
]
# community code, name, aliases, cells (row, col) in grid order 01..05 -- each set is contiguous
COMMUNITIES = [
    ("130102001001", "华兴社区", ["华兴社区", "华兴社区居委会", "华兴"], [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]),
    ("130102001002", "胜利社区", ["胜利社区", "胜利社区居委会", "胜利"], [(1, 2), (0, 3), (0, 4), (1, 3), (1, 4)]),
    ("130102002001", "青园社区", ["青园社区", "青园社区居委会"], [(2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]),
    ("130102002002", "育才社区", ["育才社区", "育才社区居委会", "育才"], [(2, 2), (2, 3), (2, 4), (3, 3), (3, 4)]),
]
GAZETTEER = {  # base grid code -> place names inside it (all unique), space separated
    "130102001001-01": "华兴小区 北二环东路 北杜村小区",
    "130102001001-02": "建北小区 北杜街 华兴农贸市场",
    "130102001001-03": "金地花园 华兴路 建北中学 翟营北街",
    "130102001001-04": "华兴东里 光华路 华兴公园",
    "130102001001-05": "建北家属院 范西路 建北幼儿园 范西小区",
    "130102001002-01": "胜利小区 胜利北大街 胜利公园",
    "130102001002-02": "东胜花园 义堂路 北国商城东店",
    "130102001002-03": "石纺宿舍 石纺路 谈固北大街",
    "130102001002-04": "和平东路 和平家园 胜利菜市场",
    "130102001002-05": "谈固东街 谈固小区 东尚广场",
    "130102002001-01": "青园小区 青园街 青园农贸市场",
    "130102002001-02": "长安公园 中山东路 长安公园南小区",
    "130102002001-03": "跃进小区 跃进路 民心河步道",
    "130102002001-04": "体育北大街 体育场小区 青园邮政所",
    "130102002001-05": "东风小区 东风路 长征街",
    "130102002002-01": "育才小区 育才街 育才菜市场",
    "130102002002-02": "广安小区 广安大街 健康路",
    "130102002002-03": "建设北大街 建设花园 市图书馆",
    "130102002002-04": "槐安东路 槐安小区 省二建宿舍",
    "130102002002-05": "翟营大街 翟营南小区 东岗路 东岗社区卫生站",
}
ORDINALS = "一二三四五"
# dedicated grids: code, name, host base grid, gazetteer
DEDICATED = [
    ("130102002002-D01", "育才小学专属网格", "130102002002-01", ["育才小学", "育才街小学"]),
    ("130102001002-D01", "市第三医院专属网格", "130102001002-03", ["市第三医院", "第三医院", "三院"]),
]


def feature(code, name, parent, level, kind, geom, gazetteer):
    geom = orient(geom, 1.0)  # CCW exterior, CW holes (RFC 7946 section 3.1.6)
    channel = {"type": "wecom_robot", "key": f"demo-{code}"} if level == "grid" else None
    return {
        "type": "Feature",
        "properties": {
            "code": code,
            "name": name,
            "parent": parent,
            "level": level,
            "kind": kind,
            "channel": channel,
            "gazetteer": gazetteer,
        },
        "geometry": {
            "type": "Polygon",
            "coordinates": [
                [[round(x, 6), round(y, 6)] for x, y in ring.coords] for ring in (geom.exterior, *geom.interiors)
            ],
        },
        "_geom": geom,
    }


base, communities, streets, centre = [], [], [], {}  # centre: base grid code -> cell centre (m)
for ccode, cname, aliases, cells in COMMUNITIES:
    for n, (r, c) in enumerate(cells, 1):
        code = f"{ccode}-{n:02d}"
        name = f"{cname}第{ORDINALS[n - 1]}网格"
        base.append(feature(code, name, ccode, "grid", "base", cell(r, c), GAZETTEER[code].split()))
        corners = [V_m[k] for k in ((r, c), (r, c + 1), (r + 1, c), (r + 1, c + 1))]
        centre[code] = [sum(q[a] for q in corners) / 4 for a in (0, 1)]
    cgeom = shapely.unary_union([f["_geom"] for f in base if f["properties"]["parent"] == ccode])
    communities.append(feature(ccode, cname, ccode[:9], "community", "base", cgeom, aliases))
for scode, sname, aliases in STREETS:
    sgeom = shapely.unary_union([f["_geom"] for f in communities if f["properties"]["parent"] == scode])
    streets.append(feature(scode, sname, DISTRICT[0], "street", "base", sgeom, aliases))
district = feature(
    DISTRICT[0], DISTRICT[1], None, "district", "base", shapely.unary_union([f["_geom"] for f in streets]), DISTRICT[2]
)

dedicated = []
for code, name, host, gaz in DEDICATED:
    cx, cy = centre[host]
    angle = math.radians(rng.uniform(-12, 12))  # ~150 x 120 m campus, slightly rotated
    ca, sa = math.cos(angle), math.sin(angle)
    ring = [
        to_lnglat(cx + px * ca - py * sa, cy + px * sa + py * ca)
        for px, py in ((-75, -60), (75, -60), (75, 60), (-75, 60))
    ]
    dedicated.append(feature(code, name, host[:12], "grid", "dedicated", Polygon(ring + ring[:1]), gaz))

features = [district, *streets, *communities, *base, *dedicated]
by_code = {f["properties"]["code"]: f for f in features}

# ---- people
SURNAMES = (
    "王李张刘陈杨赵黄周吴徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯"
    "邓曹彭曾肖田董袁潘蒋蔡杜魏吕任沈姚卢崔钟谭陆范石贾夏付白邹孟秦邱薛闫段侯史郝"
)
GIVEN = [
    "建国",
    "秀英",
    "丽娜",
    "志强",
    "海燕",
    "文静",
    "晓东",
    "俊杰",
    "桂兰",
    "淑芬",
    "春梅",
    "国庆",
    "立新",
    "红梅",
    "子涵",
    "浩然",
    "欣怡",
    "明辉",
    "玉兰",
    "振华",
    "凤英",
    "伟",
    "敏",
    "静",
    "磊",
    "洋",
    "艳",
    "勇",
    "军",
    "娟",
    "涛",
    "超",
    "霞",
    "刚",
    "亚楠",
    "雪莲",
    "建军",
    "永辉",
    "慧敏",
    "晓燕",
    "金凤",
    "宏伟",
    "佳怡",
    "子轩",
]
PREFIXES = ["138", "139", "150", "151", "152", "158", "187", "186", "133", "135", "136", "177", "182", "155"]
names, phones = set(), set()


def person(login, roles, grids, **extra):
    name = phone = None
    while name is None or name in names:
        name = rng.choice(SURNAMES) + rng.choice(GIVEN)
    while phone is None or phone in phones:
        phone = rng.choice(PREFIXES) + f"{rng.randrange(10**8):08d}"
    names.add(name), phones.add(phone)
    digest = base64.urlsafe_b64encode(hashlib.sha256(f"gridbot-demo:{login}".encode()).digest()).decode()
    return {
        "login": login,
        "name": name,
        "phone": phone,
        "roles": roles,
        "grids": grids,
        "openid": "oDEMO" + digest[:23],
        **extra,
    }


people = [person(f"w-{f['properties']['code']}", ["grid_worker"], [f["properties"]["code"]]) for f in base + dedicated]
people += [person(f"l-{c[0]}", ["grid_leader"], [c[0]]) for c in COMMUNITIES]
people += [person(f"l-{s[0]}", ["grid_leader"], [s[0]]) for s in STREETS]
people += [person(f"op-{n:02d}", ["operator"], []) for n in (1, 2)] + [person("admin", ["admin"], [])]
base_codes = [f["properties"]["code"] for f in base]
people += [person(f"v-{n:02d}", ["volunteer"], [], home_grid=rng.choice(base_codes)) for n in range(1, 9)]
people += [person(f"r-{n:02d}", ["resident"], [], home_grid=rng.choice(base_codes)) for n in range(1, 4)]

ACTIVITIES = [
    (
        "长安公园环境清洁志愿服务",
        "130102002001-02",
        "长安公园东门广场",
        3,
        "09:00",
        3,
        20,
        10,
        "清理公园绿地和步道垃圾，劝导文明遛犬。请穿运动鞋，手套和垃圾袋由社区提供。",
    ),
    (
        "育才社区敬老助餐志愿活动",
        "130102002002",
        "育才社区日间照料中心",
        10,
        "10:30",
        2,
        12,
        10,
        "协助老年食堂分餐、送餐上门，陪独居老人聊天。",
    ),
    (
        "青园农贸市场文明劝导",
        "130102002001-01",
        "青园农贸市场北门",
        -5,
        "08:00",
        2,
        15,
        8,
        "劝导占道经营、规范非机动车停放，宣传垃圾分类。",
    ),
]
activities = []
for title, grid, place, days, start, hours, cap, pph, desc in ACTIVITIES:
    pt = by_code[grid]["_geom"].representative_point()  # a point inside the grid
    activities.append(
        {
            "title": title,
            "grid": grid,
            "place": place,
            "lng": round(pt.x, 6),
            "lat": round(pt.y, 6),
            "starts_in_days": days,
            "start_time": start,
            "duration_hours": hours,
            "capacity": cap,
            "points_per_hour": pph,
            "description": desc,
        }
    )

# ---- checks
codes = [f["properties"]["code"] for f in features]
assert len(codes) == len(set(codes)), "duplicate grid codes"
for f in features:
    g, p = f["_geom"], f["properties"]
    assert g.geom_type == "Polygon" and g.is_valid and g.exterior.is_ccw, p["code"]
    assert p["level"] in ("district", "street", "community", "grid") and p["kind"] in ("base", "dedicated")
    assert p["parent"] is None or by_code[p["parent"]]["_geom"].covers(g), f"{p['code']}: bad parent"
    assert all(r.is_closed for r in (g.exterior, *g.interiors))
    assert p["level"] != "grid" or 2 <= len(p["gazetteer"]) <= 6
all_names = [n for f in features for n in f["properties"]["gazetteer"]]
assert len(all_names) == len(set(all_names)), "gazetteer names must be unique"
dgeom = district["_geom"]
assert not dgeom.interiors, "district has a hole"
outer = Polygon(
    [q for i in range(COLS) for q in (V[0, i], *H[0, i])]  # north, W->E
    + [q for j in range(ROWS) for q in (V[j, COLS], *Vt[j, COLS])]  # east, N->S
    + [q for i in reversed(range(COLS)) for q in (V[ROWS, i + 1], *H[ROWS, i][::-1])]  # south
    + [q for j in reversed(range(ROWS)) for q in (V[j + 1, 0], *Vt[j, 0][::-1])]
)  # west
assert abs(outer.area - dgeom.area) <= 1e-9 * dgeom.area  # no gap between grids and the border
union_area = shapely.unary_union([f["_geom"] for f in base]).area
assert abs(union_area - dgeom.area) <= 1e-9 * dgeom.area
assert abs(sum(f["_geom"].area for f in base) - dgeom.area) <= 1e-9 * dgeom.area  # no overlaps in total
for a, b in itertools.combinations(base, 2):
    assert a["_geom"].intersection(b["_geom"]).area == 0, (a["properties"]["code"], b["properties"]["code"])
for f in dedicated:
    hosts = [b for b in base if b["_geom"].intersection(f["_geom"]).area > 0]
    assert len(hosts) == 1 and hosts[0]["_geom"].contains(f["_geom"]), f["properties"]["code"]
    assert hosts[0]["properties"]["parent"] == f["properties"]["parent"]
assert len({p["login"] for p in people}) == len(people) and all(p["login"].isascii() for p in people)
assert all(len(p["phone"]) == 11 and len(p["openid"]) == 28 for p in people)
assert all(g in by_code for p in people for g in p["grids"] + [p.get("home_grid", DISTRICT[0])])
for a in activities:
    pt = Point(a["lng"], a["lat"])
    assert by_code[a["grid"]]["_geom"].contains(pt) and not any(d["_geom"].covers(pt) for d in dedicated)
assert sum(a["starts_in_days"] > 0 and a["capacity"] > 0 for a in activities) >= 2

# ---- write
OUT.mkdir(parents=True, exist_ok=True)
lines = [json.dumps({k: v for k, v in f.items() if k != "_geom"}, ensure_ascii=False) for f in features]
(OUT / "district.geojson").write_text(
    '{"type": "FeatureCollection", "features": [\n' + ",\n".join(lines) + "\n]}\n", encoding="utf-8"
)
header = "# Generated by scripts/make_demo_district.py -- do not edit by hand.\n"
(OUT / "people.yaml").write_text(
    header + yaml.safe_dump({"people": people, "activities": activities}, allow_unicode=True, sort_keys=False),
    encoding="utf-8",
)


def km2(fs):
    return sum(area_km2(f["_geom"]) for f in fs) / len(fs)


print(
    f"features: 1 district, {len(streets)} streets, {len(communities)} communities, {len(base)} base grids, "
    f"{len(dedicated)} dedicated grids"
)
print(
    f"district area {area_km2(dgeom):.3f} km2; mean community {km2(communities):.3f} km2, "
    f"mean base grid {km2(base):.3f} km2, mean dedicated {km2(dedicated) * 1e6:.0f} m2"
)
roles = ("grid_worker", "grid_leader", "operator", "admin", "volunteer", "resident")
counts = ", ".join(f"{r}={sum(r in p['roles'] for p in people)}" for r in roles)
print(f"people: {len(people)} ({counts}); activities: {len(activities)}")
print(f"wrote {OUT / 'district.geojson'} and {OUT / 'people.yaml'}")
