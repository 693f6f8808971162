"""The app's words in Chinese (the default) and English; templates call `t("key")`."""

from __future__ import annotations

from typing import Literal, get_args

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = get_args(Lang)
DEFAULT_LANG: Lang = "zh"

MESSAGES: dict[str, tuple[str, str]] = {
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
}


def translate(lang: Lang, key: str, **values: object) -> str:
    """The message `key` in `lang`, with `{name}` filled from `values`; an unknown key shows as itself."""
    pair = MESSAGES.get(key)
    text = key if pair is None else pair[LANGS.index(lang)]
    return text.format(**values) if values else text
