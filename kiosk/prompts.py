"""Default voice prompt texts (Mandarin), keyed by prompt name or reason code."""

from types import MappingProxyType

# Session prompts (DESIGN §2) followed by one prompt per deny/attention reason code (DESIGN §4).
DEFAULT_PROMPTS = MappingProxyType(
    {
        "greet": "请出示健康码和出入证",
        "measure": "请测量体温",
        "measure_again": "请再测量一次体温",
        "allow": "体温正常，请通行",
        "attention": "请到一旁稍候，工作人员将协助您",
        "wait": "请稍候，前一位正在处理",
        "override": "工作人员已为您开门，请通行",
        "fever": "体温异常，请到一旁稍候",
        "no_health_code": "请出示健康码",
        "health_code_red": "健康码为红码，禁止通行",
        "health_code_yellow": "健康码为黄码，请联系工作人员",
        "health_code_expired": "健康码已过期，请刷新后重试",
        "health_code_invalid": "健康码无效",
        "no_pass": "请出示出入证",
        "pass_invalid": "通行码无效",
        "pass_expired": "出入证已过期",
        "pass_not_yet_valid": "出入证尚未生效",
        "pass_revoked": "出入证已注销",
        "outside_hours": "不在允许通行的时段",
        "quota_exceeded": "今日出入次数已满",
        "unknown_code": "无法识别的二维码",
        "sensor_fault": "设备故障，请联系工作人员",
        "platform_down": "健康码平台暂不可用，请稍候",
        "travel_risk": "行程卡异常，请配合工作人员",
        "no_travel_code": "请出示行程卡",
        "health_code_not_holder": "健康码与通行证不符，请配合工作人员",
    }
)
