"""The app's words in Chinese (the default) and English; templates call `t("key")`."""

from __future__ import annotations

from typing import Literal, get_args

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = get_args(Lang)
DEFAULT_LANG: Lang = "zh"

_COMMON: dict[str, tuple[str, str]] = {
    "app": ("社区卡口办公室", "Checkpoint office"),
    "signin": ("登录", "Sign in"),
    "signout": ("退出", "Sign out"),
    "username": ("用户名", "User name"),
    "password": ("密码", "Password"),
    "signin.wrong": ("用户名或密码错误。", "Wrong user name or password."),
    "signin.limited": ("登录失败次数过多，请 {minutes} 分钟后再试。",
                       "Too many failed sign-ins: try again in {minutes} minutes."),
    "signin.expired": ("页面已过期，请重新提交。", "The page had expired: please send it again."),
    "overview": ("总览", "Overview"),
    "admin": ("用户与审计", "Users and audit"),
    "kiosks": ("卡口设备", "Kiosks"),
    "site": ("小区", "Site"),
    "kiosk": ("设备", "Kiosk"),
    "state": ("状态", "State"),
    "online": ("在线", "online"),
    "offline": ("离线", "offline"),
    "silent": ("无响应", "silent"),
    "since": ("起始", "since"),
    "last_seen": ("最后心跳", "Last heartbeat"),
    "backlog": ("待发送", "Backlog"),
    "devices": ("摄像头 / 测温", "Camera / thermometer"),
    "version": ("版本", "Version"),
    "no_kiosks": ("还没有收到任何卡口的状态。", "No kiosk has reported its status yet."),
    "silent_note": ("超过 {seconds} 秒无心跳的设备显示为灰色。",
                    "A kiosk without a heartbeat for {seconds} s is grey."),
    "users": ("用户", "Users"),
    "role": ("角色", "Role"),
    "role.guard": ("门岗", "guard"),
    "role.office": ("办公室", "office"),
    "role.admin": ("管理员", "admin"),
    "disabled": ("已停用", "disabled"),
    "active": ("启用", "active"),
    "created": ("创建", "Created"),
    "updated": ("更新", "Updated"),
    "audit": ("审计日志", "Audit log"),
    "at": ("时间", "Time"),
    "who": ("用户", "Who"),
    "action": ("操作", "Action"),
    "detail": ("详情", "Detail"),
    "users_note": ("用户由管理员在服务器上用 kiosk-office user 命令管理。",
                   "An administrator manages users on the server with kiosk-office user."),
    "forbidden": ("没有权限", "Not allowed"),
    "forbidden.text": ("您的角色（{role}）不能打开此页面。", "Your role ({role}) cannot open this page."),
    "signed_in_as": ("当前用户", "Signed in as"),
    "other_lang": ("English", "中文"),
    "alerts": ("告警", "Alerts"),
    "alerts.note": ("未处理的告警在前，最新的在前；新告警会自动出现并提示音。",
                    "Open alerts first, newest first; new alerts appear by themselves with a sound."),
    "alerts.none": ("没有告警。", "No alerts."),
    "alert.fever": ("体温异常", "Fever"),
    "alert.forgery": ("伪造通行证", "Forgery"),
    "alert.fault": ("设备故障", "Fault"),
    "alert.offline": ("设备离线", "Kiosk offline"),
    "alert.body": ("体温", "Body temperature"),
    "alert.colour": ("通行证颜色", "Pass colour"),
    "alert.hh": ("户号", "Household"),
    "alert.person": ("人员", "Person"),
    "alert.entry": ("记录编号", "Entry id"),
    "alert.acked": ("已确认", "acknowledged"),
    "alert.resolved": ("已处理", "resolved"),
    "alert.acked_by": ("{who} 于 {at} 确认", "Acknowledged by {who} at {at}"),
    "alert.resolved_by": ("{who} 于 {at} 处理完毕", "Resolved by {who} at {at}"),
    "alert.note": ("备注", "Note"),
    "alert.ack": ("确认", "Acknowledge"),
    "alert.resolve": ("处理完毕", "Resolve"),
    "colour.green": ("绿色", "green"),
    "colour.blue": ("蓝色", "blue"),
    "colour.red": ("红色", "red"),
    "colour.pink": ("粉色", "pink"),
    "entries": ("出入记录", "Entries"),
    "reports": ("日报", "Reports"),
    "trace": ("追踪", "Trace"),
    "passes": ("出入证", "Passes"),
    "entries.from": ("从", "From"),
    "entries.to": ("到", "To"),
    "entries.decision": ("结果", "Decision"),
    "entries.reason": ("原因", "Reason"),
    "entries.reasons": ("原因", "Reasons"),
    "entries.any": ("全部", "any"),
    "entries.pid": ("通行证号", "Pass id"),
    "entries.gate": ("卡口", "Gate"),
    "entries.direction": ("方向", "Direction"),
    "entries.in": ("进", "in"),
    "entries.out": ("出", "out"),
    "entries.override": ("人工放行", "overridden"),
    "entries.filter": ("查询", "Filter"),
    "entries.csv": ("导出 CSV", "Export CSV"),
    "entries.xlsx": ("导出 Excel", "Export XLSX"),
    "entries.note": ("最新的在前，每页 100 条；时间为 {offset}。",
                     "Newest first, 100 a page; times in {offset}."),
    "entries.none": ("没有符合条件的记录。", "No entries match."),
    "entries.newest": ("回到最新", "Newest"),
    "entries.older": ("更早的记录", "Older entries"),
    "entries.bad_start": ("开始时间无效。", "The start time is not valid."),
    "entries.bad_end": ("结束时间无效。", "The end time is not valid."),
    "entries.bad_window": ("结束时间须晚于开始时间。", "The end must come after the start."),
    "entries.bad_site": ("小区无效。", "The site is not valid."),
    "entries.bad_kiosk": ("设备无效。", "The kiosk is not valid."),
    "entries.bad_pid": ("通行证号无效。", "The pass id is not valid."),
    "entries.bad_hh": ("户号无效。", "The household is not valid."),
    "entries.bad_decision": ("结果无效。", "The decision is not valid."),
    "entries.bad_reason": ("原因无效。", "The reason is not valid."),
    "entries.bad_page": ("分页参数无效。", "The page key is not valid."),
    "entries.bad_cat": ("通行证颜色无效。", "The pass colour is not valid."),
    "decision.allow": ("放行", "allowed"),
    "decision.deny": ("拒绝", "denied"),
    "decision.attention": ("待处理", "attention"),
    "reason.fever": ("体温异常", "fever"),
    "reason.no_health_code": ("无健康码", "no health code"),
    "reason.health_code_red": ("健康码红码", "health code red"),
    "reason.health_code_yellow": ("健康码黄码", "health code yellow"),
    "reason.health_code_expired": ("健康码过期", "health code expired"),
    "reason.health_code_invalid": ("健康码无效", "health code invalid"),
    "reason.no_pass": ("无通行证", "no pass"),
    "reason.pass_invalid": ("通行证无效", "pass invalid"),
    "reason.pass_expired": ("通行证过期", "pass expired"),
    "reason.pass_not_yet_valid": ("通行证未生效", "pass not yet valid"),
    "reason.pass_revoked": ("通行证已吊销", "pass revoked"),
    "reason.outside_hours": ("不在通行时段", "outside hours"),
    "reason.quota_exceeded": ("超出次数限制", "quota exceeded"),
    "reason.unknown_code": ("无法识别的码", "unknown code"),
    "reason.sensor_fault": ("设备故障", "sensor fault"),
    "reason.platform_down": ("健康码平台不可用", "health platform down"),
    "pass.green": ("居民", "resident"),
    "pass.blue": ("租户", "tenant"),
    "pass.red": ("返回人员", "returnee"),
    "pass.pink": ("访客", "visitor"),
}

# Each page's own words, so that pages are added without touching each other's.
_OVERVIEW: dict[str, tuple[str, str]] = {
}
_REPORTS: dict[str, tuple[str, str]] = {
}
_TRACE: dict[str, tuple[str, str]] = {
}
_PASSES: dict[str, tuple[str, str]] = {
}
_TRAVEL: dict[str, tuple[str, str]] = {  # the travel card and a health code's holder (issue 15)
}

MESSAGES: dict[str, tuple[str, str]] = {**_COMMON, **_OVERVIEW, **_REPORTS, **_TRACE, **_PASSES, **_TRAVEL}


def translate(lang: Lang, key: str, **values: object) -> str:
    """The message `key` in `lang`, with `{name}` filled from `values`; an unknown key shows as itself."""
    pair = MESSAGES.get(key)
    text = key if pair is None else pair[LANGS.index(lang)]
    return text.format(**values) if values else text
