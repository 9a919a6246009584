"""Kiwoom REST client for minute bars (api-id ka10080).

Protocol (Kiwoom REST API, docs/architecture.md "Domain facts"): token POST /oauth2/token
{grant_type, appkey, secretkey} -> {token, expires_dt}; minute chart POST /api/dostk/chart with
header api-id ka10080, body {stk_cd, tic_scope, upd_stkpc_tp}; rows in
`stk_min_pole_chart_qry`, newest first, `cntr_tm` YYYYMMDDHHMMSS, prices as signed strings
(the sign is the direction against the previous close); more pages while the response header
cont-yn is Y, asked for with cont-yn/next-key; return_code 1700 when over the rate limit.
A token the broker calls invalid or expired (HTTP 401, or return_code 8003/8005/8006/8009/8015/
8016 in Kiwoom-Securities/Kiwoom-REST-API kiwoom/core/errors.py) is re-issued once, as the
broker's own client does; a fresh token refused again is an auth error.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from stock_pipelines.brokers.bars import build_bars
from stock_pipelines.brokers.model import (
    BarFetch,
    BrokerAuthError,
    BrokerError,
    BrokerRateLimited,
    BrokerUnavailable,
)
from stock_pipelines.brokers.tokens import Token
from stock_pipelines.brokers.transport import BrokerRestClient, env_pair, json_body, retry_policy, send
from stock_pipelines.market import SEOUL

CHART_PATH = "/api/dostk/chart"
MINUTE_CHART = "ka10080"
RATE_LIMITED = 1700
TOKEN_REFUSED = {8003, 8005, 8006, 8009, 8015, 8016}
MAX_PAGES = 100  # a whole session is a handful of pages; more means the server is looping


@dataclass(frozen=True)
class KiwoomCredentials:
    app_key: str
    secret_key: str = field(repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str | None]) -> KiwoomCredentials:
        return cls(*env_pair(env, "Kiwoom", "KIWOOM_APP_KEY", "KIWOOM_SECRET_KEY"))


class KiwoomClient(BrokerRestClient):
    name = "kiwoom"
    credentials: KiwoomCredentials

    def minute_bars(self, symbol: str, day: date, start: datetime, end: datetime) -> BarFetch:
        now = self.now().astimezone(SEOUL)
        if day == now.date():
            end = min(end, now.replace(second=0, microsecond=0))
        calls = 0
        rows: list[dict[str, object]] = []
        next_key = ""
        for _ in range(MAX_PAGES):
            page, next_key = self._page(symbol, next_key)
            calls += 1
            rows.extend(page)
            oldest = min((r["minute"] for r in page if isinstance(r["minute"], datetime)), default=None)
            if not next_key or oldest is None or oldest < start:
                break
        else:
            raise BrokerError(f"Kiwoom {MINUTE_CHART}: more than {MAX_PAGES} pages for {symbol}")
        rejected: Counter[str] = Counter()
        in_day = [r for r in rows if isinstance(r["minute"], datetime) and r["minute"].date() == day]
        rejected["other_day"] += sum(1 for r in rows if isinstance(r["minute"], datetime)) - len(in_day)
        in_day += [r for r in rows if not isinstance(r["minute"], datetime)]  # counted as malformed
        bars = build_bars(in_day, symbol, start, end, "rest_kiwoom", rejected, signed_prices=True)
        if not rejected["other_day"]:
            del rejected["other_day"]
        return BarFetch(bars=bars, calls=calls, rejected=rejected)

    def _page(self, symbol: str, next_key: str) -> tuple[list[dict[str, object]], str]:
        body, next_key = self.chart(MINUTE_CHART, {"stk_cd": symbol, "tic_scope": "1", "upd_stkpc_tp": "1"}, next_key)
        items = body.get("stk_min_pole_chart_qry") or []
        if not isinstance(items, list):
            raise BrokerError(f"Kiwoom {MINUTE_CHART}: stk_min_pole_chart_qry is not a list")
        return [self._row(i) for i in items if isinstance(i, dict)], next_key

    def chart(self, api_id: str, request_body: dict[str, str], next_key: str) -> tuple[dict, str]:
        """One call to the chart endpoint (`api_id`: ka10080 minutes, ka10079 ticks), retried as
        the policy allows: the reply's body and the next-key ("" when cont-yn is not Y)."""
        refused: Token | None = None
        for attempt in retry_policy(self.max_attempts, self.retries):
            with attempt:
                token = self.tokens.get(self._issue_token, refused=refused)
                headers = {
                    "content-type": "application/json;charset=UTF-8",
                    "authorization": f"Bearer {token.value}",
                    "api-id": api_id,
                    "cont-yn": "Y" if next_key else "N",
                    "next-key": next_key,
                }
                url = f"{self.base_url}{CHART_PATH}"
                response = self.send_counted(lambda: self.http.post(url, json=request_body, headers=headers),
                                             f"Kiwoom {api_id}")
                body = json_body(response, f"Kiwoom {api_id}")
                code = body.get("return_code")
                if code == RATE_LIMITED:
                    raise BrokerRateLimited(f"Kiwoom {api_id}: return_code 1700, over the rate limit")
                if response.status_code == 401 or code in TOKEN_REFUSED:
                    if refused is None:
                        refused = token  # one fresh token, then the next attempt
                        raise BrokerUnavailable(f"Kiwoom token refused (HTTP {response.status_code}, {code}); reissuing")
                    raise BrokerAuthError(f"Kiwoom {api_id}: a freshly issued token was refused "
                                          f"(HTTP {response.status_code}, return_code {code})")
                if response.status_code == 403:
                    raise BrokerAuthError(f"Kiwoom {api_id}: HTTP {response.status_code}")
                if response.status_code >= 500:
                    raise BrokerUnavailable(f"Kiwoom {api_id}: HTTP {response.status_code}")
                if code not in (0, "0"):
                    raise BrokerError(f"Kiwoom {api_id}: return_code {code} {body.get('return_msg', '')}")
                more = response.headers.get("cont-yn", "N") == "Y"
                return body, (response.headers.get("next-key", "") if more else "")
        raise AssertionError("unreachable: tenacity reraises")

    @staticmethod
    def _row(item: dict[str, object]) -> dict[str, object]:
        try:
            minute: datetime | None = datetime.strptime(str(item["cntr_tm"]), "%Y%m%d%H%M%S").replace(tzinfo=SEOUL)
        except (KeyError, ValueError):
            minute = None
        return {
            "minute": minute,
            "open": item.get("open_pric"),
            "high": item.get("high_pric"),
            "low": item.get("low_pric"),
            "close": item.get("cur_prc"),
            "volume": item.get("trde_qty"),
        }

    def _issue_token(self) -> Token:
        request = {
            "grant_type": "client_credentials",
            "appkey": self.credentials.app_key,
            "secretkey": self.credentials.secret_key,
        }
        response = send(lambda: self.http.post(f"{self.base_url}/oauth2/token", json=request), "Kiwoom token")
        body = json_body(response, "Kiwoom token")
        if body.get("token") and body.get("return_code") in (0, "0", None):
            issued = time.time()
            try:
                expires = datetime.strptime(str(body["expires_dt"]), "%Y%m%d%H%M%S").replace(tzinfo=SEOUL).timestamp()
            except (KeyError, ValueError):
                expires = issued + 86400
            return Token(value=str(body["token"]), expires_at=expires, issued_at=issued)
        if body.get("return_code") == RATE_LIMITED:
            raise BrokerRateLimited("Kiwoom token: over the rate limit")
        raise BrokerAuthError(f"Kiwoom token refused: {body.get('return_code')} {body.get('return_msg', '')}".strip())
