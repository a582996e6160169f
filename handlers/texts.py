"""Every word residents and grid staff read, in one place: a wording change touches only this file."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

STATUS_NAMES = {
    "reported": "已登记",
    "accepted": "已受理",
    "dispatched": "已交办网格",
    "taken": "网格员已接单",
    "in_progress": "处置中",
    "resolved": "已办结",
    "rated": "已评价",
    "closed": "已办结销号",
    "invalid": "已作废",
    "merged": "已合并",
    "transferred": "已转办",
    "escalated": "已上报上级",
    "reopened": "重新办理中",
}

ACTION_NAMES = {
    "report": "登记",
    "accept": "受理",
    "dispatch": "交办",
    "take": "接单",
    "start": "开始处置",
    "resolve": "办结",
    "rate": "评价",
    "reopen": "重新办理",
    "close": "销号",
    "transfer": "转办",
    "escalate": "上报上级",
    "invalidate": "作废",
    "merge": "合并",
    "note": "补充说明",
    "cosign": "附议",
    "suspend": "挂起",
    "resume": "恢复办理",
    "supervise": "超时督办",
}

USAGE = (
    "1. 直接发文字描述问题，如“华兴小区3号楼门口井盖丢了”；\n"
    "2. 可补充照片、语音，并发送位置（点“＋”→“位置”）；\n"
    "3. 回复“提交”登记，回复“取消”作废草稿；\n"
    "4. 回复“查询”查看我的上报和办理进度。"
)

WELCOME = (
    "您好，欢迎关注网格通！身边的安全隐患、环境卫生、设施损坏、矛盾纠纷等问题，都可以在这里反映给网格员。\n"
    + USAGE
    + "\n隐私提示：您提供的信息仅用于事件处置，手机号等个人信息不会公开。"
)
HELP = "使用说明：\n" + USAGE
GREETING = (
    "您好！请直接描述您遇到的问题（在哪里、发生了什么），并发送位置，我们会交给所在网格的网格员处理。"
    "回复“帮助”查看使用说明。"
)
THANKS = "不客气，感谢您对网格工作的支持！"
AD = "本平台只受理居民反映的问题和求助。"
UNCLEAR = "没太明白您的意思。请描述具体问题（在哪里、发生了什么），可以附上照片和位置；回复“帮助”查看使用说明。"
UNSUPPORTED = "暂不支持这种消息，请发送文字、图片、语音或位置。"
SYSTEM_BUSY = "系统繁忙，您的消息已收到并记录，稍后为您处理。"

NOTHING_TO_SUBMIT = "您还没有描述问题，请先发送文字或语音说明情况。"
NOTHING_TO_CANCEL = "当前没有待提交的内容。"
CANCELLED = "已作废本次草稿，需要时可以重新描述。"
URGENT_NOTE = "已按紧急事件处理；如有人身危险，请立即拨打110、119或120。"
REVIEW_NOTE = "工作人员会先核实情况再交办。"
NO_CASES = "您还没有上报过问题。"
RATING_THANKS = "感谢您的评价！"
RATING_REOPENED = "很抱歉没能让您满意，已重新交办处理。"
RATING_CLOSED = "该事件已经销号。如果问题仍然存在，请重新描述反映。"
RATING_PENDING = "该事件正在重新办理，办结后再请您评价。"


def fmt_time(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%m-%d %H:%M")


def draft_status(texts: int, images: int, voices: int, has_place: bool) -> str:
    have = []
    if texts:
        have.append("文字描述")
    if voices:
        have.append(f"{voices}条语音")
    if images:
        have.append(f"{images}张图片")
    if has_place:
        have.append("位置")
    missing = []
    if not texts and not voices:
        missing.append("问题描述（文字或语音）")
    if not has_place:
        missing.append("位置（点“＋”→“位置”发送，或用文字说明具体地点）")
    lines = ["已收到：" + "、".join(have) + "。"] if have else []
    if missing:
        lines.append("还缺：" + "；".join(missing) + "。")
    lines.append("信息齐全后回复“提交”登记，回复“取消”作废。")
    return "\n".join(lines)


def images_received(images: int, has_place: bool) -> str:
    if has_place:
        return f"已收到{images}张图片，请回复“提交”。"
    return f"已收到{images}张图片，请发送位置或回复“提交”。"


def submitted(case_no: str, category: str | None, urgent: bool, needs_review: bool) -> str:
    text = f"您反映的问题已登记，编号 {case_no}，类别：{category or '待分类'}。"
    if urgent:
        text += URGENT_NOTE
    text += REVIEW_NOTE if needs_review else "我们会尽快交由网格员处理。"
    return text + f"回复“查询 {case_no}”查看进度。"


def case_line(case_no: str, category: str | None, status: str, when: datetime, zone: ZoneInfo) -> str:
    return f"{case_no} {category or '待分类'} — {STATUS_NAMES.get(status, status)}（{fmt_time(when, zone)}）"


def my_cases(lines: list[str]) -> str:
    numbered = [f"{i}. {line}" for i, line in enumerate(lines, start=1)]
    return "您最近的上报：\n" + "\n".join(numbered) + "\n回复“查询 编号”查看详细进度。"


def case_timeline(
    case_no: str, category: str | None, steps: list[tuple[datetime, str, str]], status: str, zone: ZoneInfo
) -> str:
    lines = [f"编号 {case_no}（{category or '待分类'}）"]
    for moment, action, note in steps:
        line = f"{fmt_time(moment, zone)} {ACTION_NAMES.get(action, action)}"
        lines.append(line + (f"：{note}" if note else ""))
    lines.append(f"当前状态：{STATUS_NAMES.get(status, status)}")
    return "\n".join(lines)


def case_not_found(case_no: str) -> str:
    return f"没有找到编号为 {case_no} 的上报，请核对编号。"


def resolved_notice(case_no: str, note: str) -> str:
    return (
        f"您反映的问题（编号 {case_no}）已办结：{note}\n"
        "请为本次处理打分：回复1-5（5为非常满意），或回复“满意”“基本满意”“不满意”。"
    )


def already_rated(case_no: str) -> str:
    return f"您已经对编号 {case_no} 的处理作过评价，感谢您的反馈！"


def staff_done(action: str, case_no: str) -> str:
    return f"已{ACTION_NAMES.get(action, action)}：{case_no}"


def staff_refused(reason: str) -> str:
    return f"操作未成功：{reason}"


STAFF_NOT_ALLOWED = "您不是该事件所在网格的工作人员，不能办理。"
STAFF_USAGE = "格式：接单 编号，或 办结 编号 处理说明（可先发现场照片）。"


def staff_wrong_state(status: str, action: str) -> str:
    return f"该事件当前状态为“{STATUS_NAMES.get(status, status)}”，不能{ACTION_NAMES.get(action, action)}。"


def group_card(
    case_no: str,
    category: str | None,
    urgent: bool,
    place: str,
    excerpt: str,
    deadline: str,
    link: str,
    photo: str | None,
) -> str:
    """Markdown for a WeCom group robot: what a grid worker needs to decide in one glance."""
    head = f"**{'【紧急】' if urgent else '【新事件】'}{case_no}**"
    lines = [
        head,
        f"> 类别：{category or '待分类'}",
        f"> 地点：{place or '未提供'}",
        f"> 内容：{excerpt}",
        f"> 时限：{deadline} 前接单",
    ]
    if photo:
        lines.append(f"> [现场照片]({photo})")
    lines.append(f"[点击办理]({link})")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- deadlines (SLA sweep)


def _case_head(tag: str, case_no: str, category: str | None) -> list[str]:
    return [f"**【{tag}】{case_no}**", f"> 类别：{category or '待分类'}"]


def reminder_card(case_no: str, category: str | None, due: str, what: str, link: str) -> str:
    """`what`: 接单 or 办结."""
    lines = _case_head("即将超时", case_no, category)
    lines += [f"> 请于 {due} 前{what}", f"[点击办理]({link})"]
    return "\n".join(lines)


def escalation_card(case_no: str, category: str | None, from_grid: str, level: int, due: str, link: str) -> str:
    lines = _case_head("超时上报", case_no, category)
    lines += [
        f"> {from_grid}超时未接单，已上报本级（第{level}级）",
        f"> 请于 {due} 前接单或重新交办",
        f"[点击办理]({link})",
    ]
    return "\n".join(lines)


def supervision_card(case_no: str, category: str | None, grid: str, level: int, overdue_since: str, link: str) -> str:
    lines = _case_head("超时督办", case_no, category)
    lines += [f"> {grid}办理超时（时限 {overdue_since}），第{level}级督办", f"[查看详情]({link})"]
    return "\n".join(lines)


def leader_notice(case_no: str, category: str | None, why: str, link: str) -> str:
    return f"【网格通督办】事件 {case_no}（{category or '待分类'}）{why}，请及时督促办理：{link}"


def digest_card(grid: str, day: str, new: int, open_: int, overdue: int, resolved: int, satisfaction: str) -> str:
    return "\n".join(
        [
            f"**【每日简报】{grid} {day}**",
            f"> 新增：{new}　办结：{resolved}",
            f"> 在办：{open_}　超时：{overdue}",
            f"> 近30天满意率：{satisfaction}",
        ]
    )


def department_card(department: str, grid: str, card: str) -> str:
    """A copy of a grid's card for a department's group: which grid is handling it comes first."""
    return f"**【抄送·{department}】** 承办网格：{grid}\n" + card


# ---------------------------------------------------------------------------- the case page (/m/cases/…)

MOBILE_PAGE = {
    "app_name": "网格通",
    "login_title": "工作人员登录",
    "login_hint": "请用网格通工作账号登录，登录后回到您要办理的事件。",
    "login_label": "账号",
    "password_label": "密码",
    "login_button": "登录",
    "login_failed": "账号或密码不正确，请重新输入。",
    "logged_out": "您已退出登录。",
    "logout_button": "退出",
    "my_cases": "我的待办",
    "no_open_cases": "您所在网格暂无待办事件。",
    "open_from_group": "请从工作群消息中的“点击办理”链接打开事件。",
    "case_title": "事件办理",
    "case_no": "编号",
    "category": "类别",
    "urgency": "紧急程度",
    "urgent": "紧急",
    "normal": "一般",
    "status": "状态",
    "grid": "所在网格",
    "assignee": "承办人",
    "place": "地点",
    "coordinates": "定位",
    "reported_at": "上报时间",
    "report": "群众反映",
    "voice": "语音转写",
    "photos": "现场照片",
    "no_photos": "无照片",
    "deadlines": "时限",
    "accept_deadline": "接单时限",
    "resolve_deadline": "办结时限",
    "overdue": "已超时",
    "no_deadline": "无",
    "timeline": "办理记录（最新在上）",
    "actions": "办理",
    "no_actions": "当前没有您可以办理的操作。",
    "system": "系统",
    "not_provided": "未提供",
    "uncategorised": "待分类",
    "take": "接单",
    "start": "开始处置",
    "note": "补充说明",
    "transfer": "转办",
    "suspend": "挂起",
    "resume": "恢复办理",
    "resolve": "办结",
    "note_label": "说明",
    "transfer_reason": "转办原因（必填）",
    "transfer_target": "转至网格",
    "choose_grid": "请选择网格",
    "suspend_reason": "挂起原因（必填，如等待燃气公司处理）",
    "resolve_note": "办结说明（必填：怎么处理的、结果如何）",
    "photos_label": "照片（可选，最多9张）",
    "need_transfer_reason": "请填写转办原因。",
    "need_transfer_target": "请选择要转至的网格。",
    "bad_transfer_target": "所选网格不在可转办的范围内，请重新选择。",
    "same_grid": "该事件已在所选网格，无需转办。",
    "need_suspend_reason": "请填写挂起原因。",
    "need_resolve_note": "请填写办结说明。",
    "need_note_or_photo": "请填写说明或上传照片。",
    "already_suspended": "该事件已挂起，无需再次挂起。",
    "not_suspended": "该事件没有挂起，无需恢复。",
    "action_not_allowed": "您的账号不能对该事件进行此项操作。",
    "stale": "该事件刚刚有了新进展，本次操作没有执行。请查看下面的最新状态后再操作。",
    "already_taken_by_you": "您已接单，无需重复提交。",
    "failed": "操作没有成功，请检查填写的内容后重试。",
    "form_expired": "页面已过期，本次操作没有执行。请重新打开事件页面后再试。",
    "forbidden_title": "无法查看",
    "forbidden": "您没有查看该事件的权限。如有疑问，请联系所在网格或平台管理员。",
    "not_found_title": "未找到",
    "not_found": "没有找到这个编号的事件，请核对工作群消息中的链接。",
    "back": "返回",
    "suspended_since": "已挂起（{since} 起），时限暂停计时",
}

MOBILE_DONE = {
    "take": "已接单，请尽快处置。",
    "start": "已开始处置。",
    "note": "已补充说明。",
    "transfer": "已转办。",
    "suspend": "已挂起，时限暂停计时。",
    "resume": "已恢复办理，时限继续计时。",
    "resolve": "已办结，将请群众评价。",
}


def mobile_done(action: str) -> str:
    return MOBILE_DONE.get(action, f"已{ACTION_NAMES.get(action, action)}。")


def transferred_away(grid: str) -> str:
    return f"该事件已由您转办至{grid}，由该网格继续办理。"


def transferred_to(grid: str) -> str:
    return f"转至{grid}"


def photos_pending(count: int) -> str:
    return f"{count}张照片正在接收"


def photos_missing(count: int) -> str:
    return f"{count}张照片未能取得"


def other_attachments(count: int) -> str:
    return f"另有{count}个附件"


def too_many_photos(limit: int) -> str:
    return f"一次最多上传{limit}张照片，请删去一些后重试。"


def bad_photo(position: int) -> str:
    return f"第{position}张照片不是有效的图片（只接受JPEG、PNG、WebP），请换一张。"


def photo_too_big(position: int, limit_bytes: int) -> str:
    return f"第{position}张照片超过{limit_bytes // (1024 * 1024)}MB，请压缩后重试。"


def note_too_long(limit: int) -> str:
    return f"填写的内容太长，请精简到{limit}字以内。"


# ---------------------------------------------------------------------------- the mini-program (/api/v1/reports)

UNSATISFIED_NOTE = "居民评价不满意"  # the reopen note when a rating is below 3
WXA_NOT_A_REPORT = (
    "没能看出您要反映什么问题。请具体描述：在哪里、发生了什么（例如“幸福小区3号楼门口井盖丢了”），可以附上照片。"
)
WXA_NEED_TEXT = "请填写问题描述。"
WXA_BAD_PLACE = "没有取得有效的位置，请重新选择位置后再提交。"
WXA_OUTSIDE_CHINA = "所选位置不在服务范围内，请重新选择位置。"
WXA_TOO_LARGE = "上传的内容太大，请减少或压缩照片后重试。"
WXA_BAD_FORM = "提交的内容不完整，请重新填写后提交。"
WXA_RATING_NOT_YET = "该事件还没有办结，办结后再请您评价。"
WXA_LOGIN_FAILED = "登录已失效，请重新打开小程序登录。"
WXA_LOGIN_BUSY = "微信服务繁忙，请稍后再试。"
WXA_ACCOUNT_DISABLED = "该账号已停用，如有疑问请联系所在网格。"
WXA_ACCOUNT_BLOCKED = "微信暂时无法验证您的身份，请稍后再试或改用公众号反映问题。"


def wxa_submitted(case_no: str, category: str | None, urgent: bool, needs_review: bool) -> str:
    text = f"您反映的问题已登记，编号 {case_no}，类别：{category or '待分类'}。"
    if urgent:
        text += URGENT_NOTE
    text += REVIEW_NOTE if needs_review else "我们会尽快交由网格员处理。"
    return text + "可在“我的上报”查看办理进度。"


def text_too_long(limit: int) -> str:
    return f"问题描述太长，请精简到{limit}字以内。"


# ---------------------------------------------------------------------------- volunteer activities (志愿活动)

WEEKDAYS = "一二三四五六日"


def activity_when(starts_at: datetime, ends_at: datetime, zone: ZoneInfo) -> str:
    """11月25日（周三）09:00–12:00; an activity past midnight names its end day too."""
    start, end = starts_at.astimezone(zone), ends_at.astimezone(zone)
    day = f"{start.month}月{start.day}日（周{WEEKDAYS[start.weekday()]}）"
    if end.date() != start.date():
        return f"{day}{start:%H:%M}–{end.month}月{end.day}日 {end:%H:%M}"
    return f"{day}{start:%H:%M}–{end:%H:%M}"


def activity_points_rule(points_per_hour: int, points_cap: int | None) -> str:
    if points_per_hour <= 0:
        return "不计积分"
    rule = f"每小时{points_per_hour}分（按实际服务时长）"
    return rule + (f"，最多{points_cap}分" if points_cap else "")


def _activity_lines(title: str, when: str, place: str) -> list[str]:
    return [f"> 活动：{title}", f"> 时间：{when}", f"> 地点：{place or '见活动详情'}"]


def activity_card(
    title: str, when: str, place: str, confirmed: int, capacity: int, rule: str, deadline: str, link: str
) -> str:
    """A newly published activity, for the grid's group: what, when, where, how many places are left."""
    lines = ["**【志愿活动】招募志愿者**", *_activity_lines(title, when, place)]
    lines += [f"> 名额：已报名 {confirmed}/{capacity}", f"> 积分：{rule}", f"> 报名截止：{deadline}"]
    lines.append(f"[点击报名]({link})")
    return "\n".join(lines)


def activity_changed_card(
    title: str, when: str, place: str, confirmed: int, capacity: int, deadline: str, link: str
) -> str:
    lines = ["**【志愿活动】活动信息有变更**", *_activity_lines(title, when, place)]
    lines += [f"> 名额：已报名 {confirmed}/{capacity}", f"> 报名截止：{deadline}", f"[查看详情]({link})"]
    return "\n".join(lines)


def activity_cancelled_card(title: str, when: str, reason: str) -> str:
    lines = ["**【志愿活动】活动取消**", f"> 活动：{title}", f"> 原定时间：{when}", f"> 原因：{reason}"]
    lines.append("> 已报名的志愿者将收到通知，感谢大家的支持。")
    return "\n".join(lines)


def activity_cancelled_notice(title: str, when: str, reason: str) -> str:
    return f"【志愿活动取消】您报名的“{title}”（{when}）已取消，原因：{reason}。感谢您的支持，欢迎报名其他活动。"


def activity_changed_notice(title: str, when: str, place: str) -> str:
    return (
        f"【志愿活动变更】您报名的“{title}”时间或地点有变：{when}，{place or '见活动详情'}。"
        "如不能参加，请在报名截止前取消。"
    )


def promoted_notice(title: str, when: str, place: str) -> str:
    return (
        f"【候补转正】有志愿者取消报名，您已从候补转为正式报名“{title}”（{when}，{place or '见活动详情'}）。"
        "请准时签到。"
    )


# Chinese for the mini-program to show when an activity request is refused (the API's `notice`).
ACTIVITY_NOTICES = {
    "not_volunteer": "只有志愿者和居民可以报名参加活动。",
    "not_organiser": "只有本网格的网格长或管理员可以发布和管理活动。",
    "cancelled": "该活动已取消。",
    "signup_closed": "报名已截止。",
    "not_signed_up": "您还没有报名这个活动。",
    "not_confirmed": "您目前是候补，未获得正式名额，不能签到。",
    "already_done": "活动已开始或已结束，不能再取消报名。",
    "too_late": "签到时间已过。",
    "checkout_too_late": "签退时间已过，请联系网格长确认服务时长。",
    "not_checked_in": "您还没有签到。",
    "no_place": "该活动没有设置集合地点，请联系网格长确认到场。",
    "started": "活动已经开始，不能再修改。",
    "ended": "活动已经结束。",
    "capacity_below_confirmed": "名额不能少于已报名人数。",
}


def too_early(opens: str) -> str:
    return f"还没到签到时间，{opens} 起可以签到。"


def outside_geofence(distance_m: float, radius_m: int) -> str:
    return f"您距离活动地点约{round(distance_m)}米，需在{radius_m}米范围内才能签到或签退。"


# ---------------------------------------------------------------------------- points (积分) and 爱心超市

def activity_points_reason(title: str) -> str:
    return f"志愿服务：{title}"[:200]


def report_points_reason(case_no: str) -> str:
    return f"反映问题已办结：{case_no}"


def redemption_reason(item: str, quantity: int) -> str:
    return f"爱心超市兑换：{item}×{quantity}"[:200]


def refund_reason(item: str, quantity: int) -> str:
    return f"取消兑换退回：{item}×{quantity}"[:200]


def manual_reason(note: str) -> str:
    return f"积分调整：{note}"[:200]


POINTS_NOTICES = {
    "insufficient_points": "积分不足，无法兑换。",
    "out_of_stock": "库存不足，请选择其他物品或减少数量。",
    "item_unavailable": "该物品已下架。",
    "already_handed_over": "该物品已领取，不能取消兑换。",
    "cancelled": "该兑换已取消。",
    "not_manager": "只有该网格的网格长或管理员可以管理爱心超市。",
}

ANONYMOUS_VOLUNTEER = "志愿者"


# ---------------------------------------------------------------------------- public activity page (/m/activities/<id>)

ACTIVITY_PAGE = {
    "title": "志愿活动",
    "when": "时间",
    "place": "地点",
    "organiser": "发起网格",
    "places": "名额",
    "deadline": "报名截止",
    "points": "积分",
    "status": "状态",
    "open": "报名中",
    "closed": "报名已截止",
    "ended": "活动已结束",
    "cancelled": "已取消",
    "how_title": "如何报名",
    "how": (
        "请在微信中打开「网格通」小程序，进入“志愿活动”，找到本活动后点击“报名”。"
        "名额已满时将进入候补，有人取消后按先后顺序递补。"
    ),
    "not_found_title": "没有找到这个活动",
    "not_found": "活动不存在或链接有误，请从群消息中的报名链接重新打开。",
}


def activity_places(confirmed: int, capacity: int, waiting: int) -> str:
    return f"已报名 {confirmed}/{capacity}" + (f"（候补 {waiting} 人）" if waiting else "")
