"""Seeded generator of the Lanshan demo data: crews, mobile generators and about 300 tickets."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from geo.areas import RegionConfig, classify_areas, default_region, in_region, nearest_urban_centre
from geo.geocoding import CRITICAL_SITE_KINDS, Place, load_gazetteer

SKILLS: tuple[str, ...] = (
    "lv_overhead", "lv_underground", "mv_switching", "transformer",
    "meter", "tree_trimming", "generator_connect", "live_line",
)  # fmt: skip
CHANNELS: tuple[str, ...] = ("HOTLINE", "APP", "WECHAT", "WEB", "SMS", "FIELD")
KIND_SHARES: dict[str, float] = {
    "FAULT_REPAIR": 0.55, "EMERGENCY": 0.05, "COMPLAINT": 0.15,
    "INQUIRY": 0.12, "REPORT": 0.06, "SUGGESTION": 0.07,
}  # fmt: skip
LOCAL_TZ_OFFSET = timedelta(hours=8)  # China Standard Time; shifts are planned in local time


@dataclass
class DemoCrew:
    name: str
    skills: list[str]
    home_lat: float
    home_lng: float
    shift_start: datetime
    shift_end: datetime
    can_tow_generator: bool
    branch: str


@dataclass
class DemoGenerator:
    name: str
    capacity_kw: int
    lat: float
    lng: float


@dataclass
class DemoTicket:
    kind: str
    channel: str
    summary: str
    description: str
    address: str
    lat: float | None
    lng: float | None
    priority: str | None
    required_skills: list[str]
    needs_generator: bool
    critical_load_kw: int | None
    customers_affected: int
    contact_name: str
    contact_phone: str
    account_number: str | None
    preferred_channels: list[str]
    reported_minutes_ago: int


@dataclass
class DemoData:
    seed: int
    now: datetime
    crews: list[DemoCrew] = field(default_factory=list)
    generators: list[DemoGenerator] = field(default_factory=list)
    tickets: list[DemoTicket] = field(default_factory=list)


# ------------------------------------------------------------------ crews and generators

_ZH_NUMERALS = "一二三四五六七八九十"
# skill sets a real repair team holds; cycling through them guarantees every ticket's skills are covered
_CREW_TEMPLATES: tuple[tuple[str, ...], ...] = (
    ("lv_overhead", "mv_switching", "tree_trimming"),
    ("lv_overhead", "lv_underground", "generator_connect"),
    ("lv_underground", "mv_switching", "transformer"),
    ("meter", "lv_overhead"),
    ("live_line", "lv_overhead", "mv_switching"),
    ("transformer", "lv_overhead", "generator_connect", "mv_switching"),
    ("lv_overhead", "lv_underground", "meter", "tree_trimming"),
)
_BRANCH_WEIGHTS = {"CITY": 0.30, "DONGHU": 0.20, "NORTH": 0.18, "NANHU": 0.17, "NANSHAN": 0.15}


def _split(total: int, shares: dict[str, float]) -> dict[str, int]:
    """Largest-remainder split of `total` by shares, so counts always add up exactly."""
    norm = sum(shares.values())
    raw = {k: total * v / norm for k, v in shares.items()}
    counts = {k: math.floor(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: raw[k] - counts[k], reverse=True)[: total - sum(counts.values())]:
        counts[k] += 1
    return counts


def _zh_number(n: int) -> str:
    if n <= 10:
        return _ZH_NUMERALS[n - 1]
    return (
        ("" if n < 20 else _ZH_NUMERALS[n // 10 - 1])
        + "十"
        + ("" if n % 10 == 0 else _ZH_NUMERALS[n % 10 - 1])
    )


def _current_shift_start(now: datetime) -> datetime:
    """Start (UTC) of the 12-hour local shift containing `now`: day 08:00-20:00, night 20:00-08:00."""
    local = (now + LOCAL_TZ_OFFSET).replace(minute=0, second=0, microsecond=0)
    if 8 <= local.hour < 20:
        start = local.replace(hour=8)
    elif local.hour >= 20:
        start = local.replace(hour=20)
    else:
        start = (local - timedelta(days=1)).replace(hour=20)
    return start - LOCAL_TZ_OFFSET


def _make_crews(rng: random.Random, region: RegionConfig, n: int, now: datetime) -> list[DemoCrew]:
    codes = [c for c in _BRANCH_WEIGHTS if region.branch(c) is not None]
    per_branch = _split(n, {c: _BRANCH_WEIGHTS[c] for c in codes})
    current = _current_shift_start(now)
    crews: list[DemoCrew] = []
    for b, code in enumerate(codes):
        props = region.branch(code)
        assert props is not None and props.depot is not None, f"branch {code} needs a depot"
        zh, en = props.name_zh.removesuffix("分局"), props.name.removesuffix(" Branch")
        for k in range(1, per_branch[code] + 1):
            skills = list(_CREW_TEMPLATES[(b * 3 + k - 1) % len(_CREW_TEMPLATES)])
            if rng.random() < 0.3:
                extra = rng.choice([s for s in SKILLS if s not in skills and s != "generator_connect"])
                skills.append(extra)
            skills.sort(key=SKILLS.index)
            # every branch keeps its first team on the current shift; the rest split ~2/3 now, 1/3 next shift
            on_now = k == 1 or rng.random() < 0.6
            start = current if on_now else current + timedelta(hours=12)
            tow = "generator_connect" in skills  # towing is only useful to a team that can connect
            crews.append(
                DemoCrew(
                    name=f"{zh}抢修{_zh_number(k)}班 {en} Repair {k}",
                    skills=skills,
                    home_lat=props.depot.lat,
                    home_lng=props.depot.lng,
                    shift_start=start,
                    shift_end=start + timedelta(hours=12),
                    can_tow_generator=tow,
                    branch=code,
                )
            )
    return crews


def _make_generators(rng: random.Random, region: RegionConfig, n: int) -> list[DemoGenerator]:
    capacities = [1000, 500, 300, 800, 200, 630]  # the 1 MW unit first: it must exist to cover big loads
    depots = [region.branch(c) for c in ("CITY", "DONGHU", "NORTH", "NANHU", "NANSHAN")]
    depots = [d.depot for d in depots if d is not None and d.depot is not None]
    out = []
    for i in range(n):
        depot = depots[i % len(depots)]
        cap = capacities[i] if i < len(capacities) else rng.choice([200, 300, 500, 630, 800, 1000])
        out.append(DemoGenerator(f"移动发电车{i + 1}号 Mobile Generator {i + 1}", cap, depot.lat, depot.lng))
    return out


# ------------------------------------------------------------------ ticket text

# (summary_zh, description_zh, summary_en, description_en, skills, customers (lo, hi))
_FAULTS = [
    (
        "家中停电",
        "家里突然没电了，邻居家有电，空开合不上。",
        "No power at home",
        "Power went off in my flat, the neighbours still have power, breaker will not reset.",
        ["lv_overhead"],
        (1, 1),
    ),
    (
        "整栋楼停电",
        "整栋楼都停电了，电梯也停了，老人被困在家。",
        "Whole building without power",
        "The whole building is dark, lifts are stopped, elderly residents stuck upstairs.",
        ["lv_underground"],
        (20, 120),
    ),
    (
        "电压不稳",
        "电压不稳，灯一闪一闪的，冰箱时开时停。",
        "Unstable voltage",
        "Voltage keeps dipping, lights flicker and the fridge cuts in and out.",
        ["lv_overhead"],
        (1, 30),
    ),
    (
        "变压器异响",
        "路边变压器有很大的嗡嗡异响，还有焦糊味。",
        "Transformer making a loud noise",
        "The pole-mounted transformer is buzzing loudly and there is a burning smell.",
        ["transformer"],
        (30, 200),
    ),
    (
        "树枝压线",
        "大风把树枝刮断压在电线上，线路下垂。",
        "Tree branch on the power line",
        "A branch broke off in the wind and is lying on the overhead line, the line is sagging.",
        ["tree_trimming", "lv_overhead"],
        (5, 60),
    ),
    (
        "电缆故障停电",
        "小区地下电缆故障，好几个单元都停电。",
        "Underground cable fault",
        "Several blocks lost power, the workers say an underground cable failed.",
        ["lv_underground"],
        (40, 250),
    ),
    (
        "线路跳闸大面积停电",
        "整片区域停电，听到一声响，估计线路跳闸了。",
        "Feeder tripped, area outage",
        "Heard a bang and the whole area went dark, probably the feeder tripped.",
        ["mv_switching"],
        (150, 800),
    ),
    (
        "电表故障",
        "电表烧了冒烟，现在家里没电。",
        "Meter burnt out",
        "The meter box smoked and burnt out, no power in the house now.",
        ["meter"],
        (1, 1),
    ),
    (
        "路灯不亮",
        "这一段路灯全都不亮，晚上很危险。",
        "Streetlights out",
        "All streetlights along this stretch are out, dangerous at night.",
        ["lv_overhead"],
        (0, 0),
    ),
    (
        "电线杆倾斜",
        "电线杆被雨水冲得倾斜了，线拉得很紧。",
        "Leaning utility pole",
        "A pole is leaning after the rain and the conductors are pulled tight.",
        ["live_line", "lv_overhead"],
        (0, 40),
    ),
]
_EMERGENCIES = [
    (
        "电线落地",
        "一根电线断了掉在路上，还在冒火花，已经有人围观。",
        "Live wire down",
        "A wire snapped and is lying across the road sparking, people are gathering.",
        ["lv_overhead"],
        (10, 150),
    ),
    (
        "变压器起火",
        "变压器起火冒黑烟，已经打了119。",
        "Transformer on fire",
        "The transformer caught fire with black smoke, fire brigade called.",
        ["transformer"],
        (50, 400),
    ),
    (
        "配电箱起火",
        "楼下配电箱起火了，整栋楼停电。",
        "Fire at the distribution box",
        "The distribution box downstairs is on fire and the building is out.",
        ["lv_underground"],
        (20, 120),
    ),
    (
        "触电危险",
        "电线垂得很低，小孩伸手就能碰到，非常危险。",
        "Electrocution risk",
        "A line is hanging so low that children can touch it, very dangerous.",
        ["lv_overhead"],
        (0, 20),
    ),
    (
        "电杆被撞断",
        "货车撞断电线杆，电线挂在路中间。",
        "Pole knocked down by a truck",
        "A truck hit a pole, wires are hanging across the road.",
        ["live_line", "lv_overhead"],
        (30, 300),
    ),
]
_COMPLAINTS = [
    (
        "频繁停电",
        "这个月已经停电四次了，每次都没有说明原因。",
        "Repeated outages",
        "This is the fourth outage this month and nobody explains why.",
    ),
    (
        "电压偏低",
        "晚上电压太低，空调都启动不了，投诉供电质量。",
        "Low voltage every evening",
        "Voltage is so low in the evening the air conditioner will not start.",
    ),
    (
        "服务态度差",
        "抢修人员态度很差，说话不耐烦。",
        "Rude repair crew",
        "The repair crew were rude and impatient with us.",
    ),
    (
        "热线打不通",
        "95598打了半小时打不进去。",
        "Could not get through to the hotline",
        "I was on hold for half an hour on the hotline.",
    ),
    (
        "电费异常",
        "这个月电费突然翻倍，怀疑电表有问题。",
        "Bill doubled",
        "My bill doubled this month, I think the meter is wrong.",
    ),
    (
        "业务办理慢",
        "新装电表申请一个多月了还没有装。",
        "New connection taking too long",
        "Applied for a new connection over a month ago and still nothing.",
    ),
    (
        "施工未恢复",
        "电力施工挖开路面，完工后一直没有恢复。",
        "Road left dug up after works",
        "The power works dug up the road and never restored it.",
    ),
    (
        "停电未通知",
        "计划停电没有提前通知，冰箱里的东西都坏了。",
        "Planned outage without notice",
        "There was no notice of the planned outage, all the food in the fridge spoiled.",
    ),
]
_INQUIRIES = [
    (
        "什么时候来电",
        "请问我们这里什么时候能恢复供电？",
        "When will power be back?",
        "Could you tell me when power will be restored here?",
    ),
    (
        "如何缴费",
        "请问电费可以在手机上怎么交？",
        "How do I pay my bill in the app?",
        "How can I pay my electricity bill from my phone?",
    ),
    (
        "阶梯电价",
        "想咨询一下阶梯电价是怎么计算的。",
        "How is tiered pricing calculated?",
        "I would like to know how the tiered electricity price works.",
    ),
    (
        "计划停电时间",
        "听说下周要停电检修，具体是哪天？",
        "Planned outage date",
        "I heard there will be maintenance next week, which day exactly?",
    ),
    (
        "新装办理",
        "新房子装电需要带什么材料？",
        "Documents for a new connection",
        "What documents do I need for a new connection?",
    ),
]
_REPORTS = [
    (
        "举报窃电",
        "隔壁商铺绕过电表私接电线，疑似窃电。",
        "Suspected electricity theft",
        "The shop next door seems to bypass its meter.",
    ),
    (
        "私拉乱接",
        "有人从路灯杆上私拉电线给摊位用电。",
        "Illegal wiring from a streetlight",
        "Someone is running a cable from a streetlight pole to their stall.",
    ),
    (
        "冒充电力人员",
        "有人冒充供电公司员工上门收费。",
        "People posing as utility staff",
        "People pretending to be from the power company are collecting money door to door.",
    ),
    (
        "高压线下施工",
        "吊车在高压线下作业，很危险。",
        "Crane working under a high-voltage line",
        "A crane is working right under the high-voltage line.",
    ),
]
_SUGGESTIONS = [
    (
        "增加路灯",
        "建议在这条路增加几盏路灯。",
        "More streetlights please",
        "Please add a few streetlights on this road.",
    ),
    (
        "提前短信通知",
        "建议停电前一天发短信提醒。",
        "Text us the day before outages",
        "Suggest sending an SMS the day before a planned outage.",
    ),
    (
        "停电地图",
        "建议APP增加停电范围地图。",
        "Outage map in the app",
        "Please add a map of outage areas to the app.",
    ),
    (
        "周末办理业务",
        "建议营业厅周末也能办理业务。",
        "Open service halls at weekends",
        "Service halls should also open at weekends.",
    ),
]
_CRITICAL = [
    (
        "{site}停电",
        "{site}全部停电，备用电源只能撑一两个小时，请尽快派发电车。",
        "Power cut at {site_en}",
        "{site_en} has lost supply, backup power lasts only an hour or two; please send a mobile generator.",
    ),
    (
        "{site}供电中断",
        "{site}供电中断，重要设备停运，急需保电。",
        "Supply lost at {site_en}",
        "Supply to {site_en} is down and critical equipment has stopped.",
    ),
]
_UNRESOLVABLE = [
    "老街后面那个小卖部旁边",
    "河边大樟树下面",
    "高速桥下第三个路口往里走",
    "我也说不清，就在加油站对面",
    "山里面，信号不好说不清楚",
    "near the big banyan tree by the river",
    "behind the old cinema",
    "the farm past the second bridge",
    "菜地旁边那排平房",
    "opposite the petrol station, I think",
]
_SURNAMES = [
    ("王", "Wang"),
    ("李", "Li"),
    ("张", "Zhang"),
    ("刘", "Liu"),
    ("陈", "Chen"),
    ("杨", "Yang"),
    ("黄", "Huang"),
    ("赵", "Zhao"),
    ("周", "Zhou"),
    ("吴", "Wu"),
    ("徐", "Xu"),
    ("胡", "Hu"),
    ("朱", "Zhu"),
    ("郭", "Guo"),
    ("何", "He"),
    ("罗", "Luo"),
    ("熊", "Xiong"),
    ("汪", "Wang"),
]
_GIVEN = [
    ("伟", "Wei"),
    ("芳", "Fang"),
    ("娜", "Na"),
    ("敏", "Min"),
    ("静", "Jing"),
    ("强", "Qiang"),
    ("磊", "Lei"),
    ("军", "Jun"),
    ("洋", "Yang"),
    ("勇", "Yong"),
    ("艳", "Yan"),
    ("杰", "Jie"),
    ("涛", "Tao"),
    ("明", "Ming"),
    ("秀英", "Xiuying"),
    ("桂兰", "Guilan"),
    ("建华", "Jianhua"),
    ("志刚", "Zhigang"),
    ("海燕", "Haiyan"),
    ("小红", "Xiaohong"),
]


# prefixes in use by the three Chinese mobile operators; any 1[3-9]x would pass validation, these look real
_MOBILE_PREFIXES: list[str] = [
    *(f"13{d}" for d in "0123456789"), *(f"15{d}" for d in "0125679"), "166", "173", "177",
    *(f"18{d}" for d in "0126789"), "191", "198", "199",
]  # fmt: skip


@dataclass
class _Caller:
    name_zh: str
    name_en: str
    phone: str
    account: str | None


class _Builder:
    """Holds the shared random state and place pools while tickets are generated."""

    def __init__(self, rng: random.Random, region: RegionConfig) -> None:
        self.rng = rng
        self.region = region
        self.phones: set[str] = set()
        self.decks: dict[str, list[tuple]] = {}
        places = [p for p in load_gazetteer() if in_region(region, p.lat, p.lng)]
        areas = classify_areas(region, [p.lat for p in places], [p.lng for p in places])
        everyday = {"street", "residential", "village", "school", "market", "landmark", "park"}
        self.pools: dict[str, list[Place]] = {"URBAN": [], "RURAL": [], "REMOTE": []}
        for p, area in zip(places, areas, strict=True):
            if p.kind in everyday:
                self.pools[area].append(p)
        self.critical = [p for p in places if p.kind in CRITICAL_SITE_KINDS]
        self.towns = {p.name_zh: p for p in places if p.kind == "township"}

    def deal(self, kind: str, templates: list[tuple]) -> tuple:
        """Next template of a kind from a shuffled deck, so every situation shows up in the demo."""
        deck = self.decks.setdefault(kind, [])
        if not deck:
            deck.extend(self.rng.sample(templates, len(templates)))
        return deck.pop()

    def place(self) -> Place:
        # most calls come from town; the remote hills only produce a trickle
        area = self.rng.choices(["URBAN", "RURAL", "REMOTE"], weights=[0.55, 0.33, 0.12])[0]
        return self.rng.choice(self.pools[area])

    def caller(self) -> _Caller:
        while True:
            phone = self.rng.choice(_MOBILE_PREFIXES) + "".join(
                self.rng.choice("0123456789") for _ in range(8)
            )
            if phone not in self.phones:
                self.phones.add(phone)
                break
        sz, se = self.rng.choice(_SURNAMES)
        gz, ge = self.rng.choice(_GIVEN)
        account = (
            "07" + "".join(self.rng.choice("0123456789") for _ in range(8))
            if self.rng.random() < 0.85
            else None
        )
        return _Caller(sz + gz, f"{se} {ge}", phone, account)

    def address(self, place: Place, zh: bool) -> str:
        r = self.rng
        town = self._town_of(place)
        if place.kind == "street":
            n = r.randint(1, 260)
            centre, _ = nearest_urban_centre(self.region, place.lat, place.lng)
            # callers say 岚山市 (the city), not 岚山市区 (its urban area)
            prefix = "岚山市" if centre.name_zh == "岚山市区" else centre.name_zh
            return f"{prefix}{place.name_zh}{n}号" if zh else f"No. {n} {place.name_en}, Lanshan"
        if place.kind == "residential":
            b, u, room = r.randint(1, 28), r.randint(1, 4), r.randint(1, 30) * 100 + r.randint(1, 4)
            return f"{place.name_zh}{b}栋{u}单元{room}室" if zh else f"Bldg {b}, Unit {u}, {place.name_en}"
        if place.kind == "village":
            if not zh:
                return f"{place.name_en}, {town[1] if town else 'Lanshan'}"
            return f"{town[0] if town else ''}{place.name_zh}{r.randint(1, 9)}组"
        return f"{place.name_zh}附近" if zh else f"near {place.name_en}"

    def _town_of(self, place: Place) -> tuple[str, str] | None:
        for alias in place.aliases:  # village aliases carry "<township><village>", e.g. 青山镇王家湾村
            town = alias.removesuffix(place.name_zh)
            if town != alias and town in self.towns:
                return town, self.towns[town].name_en
        return None

    def near(self, place: Place, max_km: float) -> tuple[float, float]:
        """A GPS fix near the place, kept inside the region outline."""
        for _ in range(20):
            ang, d = self.rng.uniform(0, 2 * math.pi), max_km * math.sqrt(self.rng.random())
            lat = place.lat + d * math.cos(ang) / 111.2
            lng = place.lng + d * math.sin(ang) / (111.2 * math.cos(math.radians(place.lat)))
            if in_region(self.region, lat, lng):
                return round(lat, 6), round(lng, 6)
        return place.lat, place.lng


def _channel(rng: random.Random, with_coords: bool) -> str:
    if with_coords:  # a GPS fix comes from the app, WeChat or a crew in the field
        return rng.choices(["APP", "WECHAT", "FIELD", "HOTLINE"], weights=[0.4, 0.35, 0.15, 0.1])[0]
    return rng.choices(["HOTLINE", "WECHAT", "WEB", "SMS"], weights=[0.6, 0.15, 0.13, 0.12])[0]


def _preferred(rng: random.Random, channel: str) -> list[str]:
    base = {"HOTLINE": ["SMS"], "APP": ["APP"], "WECHAT": ["WECHAT"], "WEB": ["SMS"], "SMS": ["SMS"]}
    prefs = list(base.get(channel, ["SMS"]))
    if rng.random() < 0.3:
        prefs.append(rng.choice([c for c in ("SMS", "WECHAT", "APP", "HOTLINE") if c not in prefs]))
    return prefs


def _make_tickets(rng: random.Random, region: RegionConfig, n: int) -> list[DemoTicket]:
    b = _Builder(rng, region)
    kinds = [k for k, c in _split(n, KIND_SHARES).items() for _ in range(c)]
    rng.shuffle(kinds)
    free = list(range(n))  # ticket slots not yet given a special role
    roles: dict[int, str] = {}

    def take(count: int, allowed: set[str] | None = None) -> list[int]:
        pool = [i for i in free if allowed is None or kinds[i] in allowed]
        picked = sorted(rng.sample(pool, min(count, len(pool))))
        for i in picked:
            free.remove(i)
        return picked

    n_critical = max(1, round(n / 30))
    for i in take(n_critical, {"FAULT_REPAIR"}):
        roles[i] = "critical"
    clusters: list[tuple[Place, list[int]]] = []
    for c in range(min(3, n // 60)):
        centre = b.rng.choice(b.pools[["URBAN", "RURAL", "URBAN"][c]])
        clusters.append((centre, take(max(4, n // 30), {"FAULT_REPAIR"})))
    callers: list[tuple[_Caller, Place, list[int]]] = []
    for _ in range(n // 25):
        calls = take(rng.randint(2, 6))
        if calls:
            callers.append((b.caller(), b.place(), calls))
    for i in take(round(n * 0.05)):
        roles[i] = "unresolvable"

    tickets: list[DemoTicket | None] = [None] * n

    def build(i: int, place: Place | None, with_coords: bool, caller: _Caller | None, spread: float) -> None:
        kind = kinds[i]
        zh = rng.random() < 0.6
        caller = caller or b.caller()
        templates = {
            "FAULT_REPAIR": _FAULTS,
            "EMERGENCY": _EMERGENCIES,
            "COMPLAINT": _COMPLAINTS,
            "INQUIRY": _INQUIRIES,
            "REPORT": _REPORTS,
            "SUGGESTION": _SUGGESTIONS,
        }[kind]
        t = b.deal(kind, templates)
        skills = list(t[4]) if len(t) > 4 else []
        lo, hi = t[5] if len(t) > 5 else (1, 1)
        if place is None:
            address = rng.choice(_UNRESOLVABLE)
            lat = lng = None
        else:
            address = b.address(place, zh)
            lat, lng = b.near(place, spread) if with_coords else (None, None)
        where = address if zh else f"({address})"
        channel = _channel(rng, lat is not None)
        priority = None  # left to intake, except a few set by the call-taker
        if kind == "EMERGENCY" and rng.random() < 0.35:
            priority = "EMERGENCY"
        elif t[2] == "Streetlights out" and rng.random() < 0.5:
            priority = "LOW"
        if kind == "EMERGENCY":
            minutes = rng.randint(2, 240)
        elif kind == "FAULT_REPAIR":
            recent = rng.random() < 0.85  # most faults are live; the rest are history for trend analysis
            minutes = rng.randint(2, 360) if recent else rng.randint(1440, 25 * 1440)
        else:
            minutes = rng.randint(5, 20 * 1440)
        tickets[i] = DemoTicket(
            kind=kind,
            channel=channel,
            summary=t[0] if zh else t[2],
            description=f"{where}：{t[1]}" if zh else f"{t[3]} {where}",
            address=address,
            lat=lat,
            lng=lng,
            priority=priority,
            required_skills=skills,
            needs_generator=False,
            critical_load_kw=None,
            customers_affected=rng.randint(lo, hi),
            contact_name=caller.name_zh if zh else caller.name_en,
            contact_phone=caller.phone,
            account_number=caller.account,
            preferred_channels=_preferred(rng, channel),
            reported_minutes_ago=minutes,
        )

    # critical sites: named in the address so intake (and the gazetteer's kind) raises the priority
    sites = rng.sample(
        b.critical, min(len(b.critical), len([i for i, r in roles.items() if r == "critical"]))
    )
    for i, site in zip(sorted(i for i, r in roles.items() if r == "critical"), sites, strict=False):
        zh = rng.random() < 0.6
        t = rng.choice(_CRITICAL)
        with_coords = rng.random() < 0.5
        lat, lng = (site.lat, site.lng) if with_coords else (None, None)
        channel = "HOTLINE" if not with_coords else rng.choice(["APP", "FIELD"])
        caller = b.caller()
        tickets[i] = DemoTicket(
            kind=kinds[i],
            channel=channel,
            summary=t[0].format(site=site.name_zh) if zh else t[2].format(site_en=site.name_en),
            description=t[1].format(site=site.name_zh) if zh else t[3].format(site_en=site.name_en),
            address=site.name_zh if zh else site.name_en,
            lat=lat,
            lng=lng,
            priority="CRITICAL" if rng.random() < 0.4 else None,
            required_skills=["lv_overhead", "generator_connect"],
            needs_generator=True,
            critical_load_kw=rng.choice([80, 120, 150, 200, 250, 320, 400, 500, 650, 800]),
            customers_affected=rng.randint(1, 5),
            contact_name=(site.name_zh + "值班室") if zh else f"{site.name_en} duty office",
            contact_phone=caller.phone,
            account_number=caller.account,
            preferred_channels=["HOTLINE", "SMS"],
            reported_minutes_ago=rng.randint(3, 90),
        )
    # outage clusters: many single-customer calls close together in time and space
    for centre, slots in clusters:
        skills = ["lv_underground"] if centre.kind == "residential" else ["lv_overhead"]
        for i in slots:
            zh = rng.random() < 0.6
            with_coords = rng.random() < 0.6
            lat, lng = b.near(centre, 0.4) if with_coords else (None, None)
            channel = _channel(rng, with_coords)
            caller = b.caller()
            address = b.address(centre, zh)
            tickets[i] = DemoTicket(
                kind="FAULT_REPAIR",
                channel=channel,
                summary="停电" if zh else "Power outage",
                description=(
                    f"{address}停电了，附近好几家都没电。"
                    if zh
                    else f"Power is out at {address}, several neighbours too."
                ),
                address=address,
                lat=lat,
                lng=lng,
                priority=None,
                required_skills=skills,
                needs_generator=False,
                critical_load_kw=None,
                customers_affected=rng.randint(1, 30),
                contact_name=caller.name_zh if zh else caller.name_en,
                contact_phone=caller.phone,
                account_number=caller.account,
                preferred_channels=_preferred(rng, channel),
                reported_minutes_ago=rng.randint(10, 120),
            )
    # repeat callers: one customer (phone, account, home) behind 2-6 tickets
    for caller, home, slots in callers:
        for i in slots:
            build(i, home, rng.random() < 0.5, caller, 0.05)
    # the rest, with coordinates topped up to about half of all tickets
    n_coords = sum(1 for t in tickets if t is not None and t.lat is not None)
    rest = [i for i in free if roles.get(i) != "unresolvable"]
    want = max(0, round(n * 0.5) - n_coords)
    coord_slots = set(rng.sample(rest, min(want, len(rest))))
    for i in range(n):
        if tickets[i] is not None:
            continue
        if roles.get(i) == "unresolvable":
            build(i, None, False, None, 0.0)
        else:
            build(i, b.place(), i in coord_slots, None, 0.3)
    return [t for t in tickets if t is not None]


def generate_demo(
    seed: int = 7,
    n_crews: int = 30,
    n_generators: int = 6,
    n_tickets: int = 300,
    now: datetime | None = None,
) -> DemoData:
    """Generate the demo crews, generators and tickets; the same seed and `now` give the same data."""
    now = now or datetime.now(UTC)
    if now.tzinfo is None:  # naive datetimes are taken as UTC, like the rest of gridcrew
        now = now.replace(tzinfo=UTC)
    region = default_region()
    rng = random.Random(seed)
    crews = _make_crews(rng, region, n_crews, now)
    generators = _make_generators(rng, region, n_generators)
    tickets = _make_tickets(rng, region, n_tickets)
    return DemoData(seed=seed, now=now, crews=crews, generators=generators, tickets=tickets)


if __name__ == "__main__":  # quick look: python -m demo.generate
    from collections import Counter

    data = generate_demo()
    print(f"{len(data.crews)} crews, {len(data.generators)} generators, {len(data.tickets)} tickets")
    print("kinds:", dict(Counter(t.kind for t in data.tickets)))
    print("with coordinates:", sum(t.lat is not None for t in data.tickets))
