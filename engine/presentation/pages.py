"""The pages a lead opens from a message (unsubscribe, confirm a subscription, a friend's
referral link): in the lead's own language, with the lender's name and postal address, laid out
for a phone first. Plain HTML with its style inline: nothing is fetched from anywhere else."""

from __future__ import annotations

from html import escape

LANGUAGES = ("zh-CN", "en")

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "what.email": "e-mails",
        "what.sms": "text messages",
        "what.phone": "calls",
        "unsubscribe.title": "Unsubscribe",
        "unsubscribe.ask": "Stop marketing {what} from {lender}?",
        "unsubscribe.note": "Messages about your own loan or application will still reach you.",
        "unsubscribe.button": "Unsubscribe",
        "unsubscribed.title": "You are unsubscribed",
        "unsubscribed.body": "You will not receive marketing {what} from {lender} again.",
        "confirm.title": "Confirm your subscription",
        "confirm.ask": "Confirm that you want offers from {lender} by e-mail.",
        "confirm.note": "You can unsubscribe at any time with the link in every e-mail.",
        "confirm.button": "Confirm",
        "confirmed.title": "Thank you",
        "confirmed.body": "Your subscription is confirmed.",
        "invalid.title": "This link is not valid",
        "invalid.body": "Please use the link in the latest message from {lender}.",
        "expired.title": "This link has expired",
        "expired.body": "Please use the link in the latest message from {lender}.",
        "referral.title": "Invited by a friend",
        "referral.body": "A friend invited you to {lender}. Quote this code when you apply:",
        "referral.note": "When your loan is funded, you and your friend both get a reward.",
        "test.title": "This was a test message",
        "test.body": "Links in {lender}'s test sends do nothing: no one's subscription changed.",
    },
    "zh-CN": {
        "what.email": "邮件",
        "what.sms": "短信",
        "what.phone": "电话",
        "unsubscribe.title": "退订",
        "unsubscribe.ask": "不再接收{lender}的营销{what}？",
        "unsubscribe.note": "有关您本人贷款或申请的通知仍会发送给您。",
        "unsubscribe.button": "退订",
        "unsubscribed.title": "已退订",
        "unsubscribed.body": "您将不再收到{lender}的营销{what}。",
        "confirm.title": "确认订阅",
        "confirm.ask": "确认通过电子邮件接收{lender}的优惠信息。",
        "confirm.note": "您可随时通过每封邮件中的链接退订。",
        "confirm.button": "确认",
        "confirmed.title": "谢谢",
        "confirmed.body": "订阅已确认。",
        "invalid.title": "链接无效",
        "invalid.body": "请使用{lender}最新消息中的链接。",
        "expired.title": "链接已过期",
        "expired.body": "请使用{lender}最新消息中的链接。",
        "referral.title": "好友推荐",
        "referral.body": "您的朋友邀请您了解{lender}。申请时请填写推荐码：",
        "referral.note": "贷款发放后，您和朋友都将获得奖励。",
        "test.title": "这是一条测试消息",
        "test.body": "{lender}测试消息中的链接不起作用：任何人的订阅均未改变。",
    },
}

STYLE = """
*{box-sizing:border-box}
body{margin:0;background:#f4f5f7;color:#1f2328;font:16px/1.6 system-ui,-apple-system,"PingFang SC",
"Hiragino Sans GB","Noto Sans CJK SC","Microsoft YaHei",sans-serif;-webkit-text-size-adjust:100%}
main{max-width:30rem;margin:0 auto;padding:1.25rem}
.card{background:#fff;border-radius:14px;padding:1.5rem 1.25rem;box-shadow:0 1px 3px rgba(0,0,0,.08)}
.lender{font-weight:600;color:#b42318;letter-spacing:.02em;margin:0 0 1rem}
h1{font-size:1.35rem;line-height:1.3;margin:0 0 .75rem}
p{margin:0 0 1rem}
.note{color:#57606a;font-size:.925rem}
button{display:block;width:100%;min-height:3rem;border:0;border-radius:10px;background:#b42318;color:#fff;
font:inherit;font-size:1.05rem;font-weight:600;cursor:pointer}
button:focus-visible{outline:3px solid #1f6feb;outline-offset:2px}
.code{font-size:1.8rem;font-weight:700;letter-spacing:.15em;text-align:center;background:#f4f5f7;
border-radius:10px;padding:.75rem;margin:0 0 1rem}
footer{color:#6e7781;font-size:.8rem;text-align:center;padding:1rem .5rem}
"""


def language_of(preferred: str | None, accept_language: str = "") -> str:
    """The lead's language if known, else the browser's first supported one, else Chinese."""
    if preferred in LANGUAGES:
        return preferred
    for part in accept_language.split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return "zh-CN"


def text(lang: str, key: str, **values: str) -> str:
    return TEXTS[lang][key].format(**values)


def page(lang: str, key: str, lender: str, address: str, body: str) -> str:
    """A whole page: the lender's name, the title for ``key``, ``body`` (HTML), the address."""
    title = escape(text(lang, f"{key}.title"))
    footer = f"<footer>{escape(lender)}" + (f" · {escape(address)}" if address else "") + "</footer>"
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title} · {escape(lender)}</title><style>{STYLE}</style></head><body><main>"
        f'<div class="card"><p class="lender">{escape(lender)}</p><h1>{title}</h1>{body}</div>{footer}'
        "</main></body></html>"
    )


def ask(lang: str, key: str, lender: str, address: str, **values: str) -> str:
    """A question with one button (a POST: link scanners never press it)."""
    body = (
        f"<p>{escape(text(lang, f'{key}.ask', lender=lender, **values))}</p>"
        f'<p class="note">{escape(text(lang, f"{key}.note"))}</p>'
        f'<form method="post"><button type="submit">{escape(text(lang, f"{key}.button"))}</button></form>'
    )
    return page(lang, key, lender, address, body)


def tell(lang: str, key: str, lender: str, address: str, **values: str) -> str:
    """An outcome in one sentence."""
    return page(lang, key, lender, address, f"<p>{escape(text(lang, f'{key}.body', lender=lender, **values))}</p>")


def referral(lang: str, code: str, lender: str, address: str) -> str:
    body = (
        f"<p>{escape(text(lang, 'referral.body', lender=lender))}</p>"
        f'<p class="code">{escape(code)}</p><p class="note">{escape(text(lang, "referral.note"))}</p>'
    )
    return page(lang, "referral", lender, address, body)
