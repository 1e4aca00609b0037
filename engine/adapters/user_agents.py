"""Which user agents are machines: crawlers and bots (``crawlerdetect``, a port of the widely used
CrawlerDetect list), and the mail security gateways, link scanners and preview fetchers that
follow every link of a message on the recipient's behalf."""

from __future__ import annotations

import functools
import re

from crawlerdetect import CrawlerDetect

#: Security gateways, scanners and preview agents that crawlerdetect does not name.
SCANNERS = re.compile(
    r"proofpoint|urldefense|mimecast|barracuda|symantec|messagelabs|trend ?micro|forcepoint|ironport|"
    r"safelinks|linkscanner|zscaler|sophos|fortiguard|bitdefender|kaspersky|avast|checkpoint|cisco|"
    r"microsoft office|ms-office|outlook-android|skypeuripreview|googleimageproxy|bingpreview|"
    r"headlesschrome|phantomjs|okhttp|go-http-client|python|curl|wget|java/|libwww|httpclient",
    re.I,
)
_DETECT = CrawlerDetect()


@functools.lru_cache(maxsize=4096)
def is_bot(user_agent: str) -> bool:
    """Whether ``user_agent`` is a machine's (a known crawler, scanner or preview agent)."""
    if SCANNERS.search(user_agent):
        return True
    return bool(_DETECT.isCrawler(user_agent))
