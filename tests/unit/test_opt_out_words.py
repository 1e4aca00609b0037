"""SMS replies that mean "stop", as leads really write them, in English and Chinese; and replies
that do not."""

from __future__ import annotations

import pytest

from engine.domain.delivery.suppression import is_opt_out

STOPS = [
    "STOP", "stop", "Stop.", "STOP please", "please stop", "Stop texting me", "stop sending me these",
    "STOPALL", "UNSUBSCRIBE", "unsubscribe me pls", "opt out", "Opt-out", "remove me from your list",
    "Please take me off this list", "Don't text me again", "do not contact me", "quit", "cancel", "end",
    "T", "td", "TD.", "Ｔ Ｄ", "ＴＤ", "Ｓ Ｔ Ｏ Ｐ", "N", "R",
    "退订", "请退订", "退订谢谢", "回T退订", "不要再发了", "别再发了", "不要发了", "拒收", "取消订阅", "取消",
    "请不要再发短信给我", "别发了！", "停止发送", "勿扰",
]  # fmt: skip
NOT_STOPS = [
    "What rate can I get?", "好的，谢谢", "我想了解一下贷款", "Can you call me tomorrow", "Yes", "1",
    "取消贷款申请吗？不，我还要", "Don't stop me now, what are the fees for the loan and how long does it take",
    "Please send the application link", "什么时候放款",
]  # fmt: skip


@pytest.mark.parametrize("reply", STOPS)
def test_a_reply_that_asks_to_stop_opts_out(reply: str) -> None:
    assert is_opt_out(reply)


@pytest.mark.parametrize("reply", NOT_STOPS)
def test_an_ordinary_reply_does_not(reply: str) -> None:
    assert not is_opt_out(reply)
