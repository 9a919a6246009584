"""KIS (Korea Investment & Securities) REST client for minute bars.

Protocol (KIS Open API, docs/architecture.md "Domain facts"):
- token: POST /oauth2/tokenP {grant_type, appkey, appsecret} -> access_token, valid a day,
  at most one issue a minute per app key (EGW00133 otherwise);
- today's minute bars: GET .../quotations/inquire-time-itemchartprice, tr_id FHKST03010200,
  30 bars at or before FID_INPUT_HOUR_1, newest first, the newest possibly still forming;
- past days: GET .../quotations/inquire-time-dailychartprice, tr_id FHKST03010230, 120 bars
  at or before FID_INPUT_DATE_1 + FID_INPUT_HOUR_1, newest first;
- a day's traded volume: GET .../quotations/inquire-daily-itemchartprice, tr_id FHKST03010100
  (period bars, FID_PERIOD_DIV_CODE=D), output2 rows per day with `acml_vol`,
  taken from the KIS API portal's field names (docs/simulator.md says what is unverified);
- every call carries authorization, appkey, appsecret, tr_id, custtype headers;
- errors come in the rt_cd/msg_cd/msg1 envelope: EGW00201 over the rate limit (detected by
  msg_cd, whatever the HTTP status), EGW00123 expired token, EGW00121 invalid token.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import polars as pl

from stock_pipelines.brokers.bars import build_bars, seoul_minute
from stock_pipelines.brokers.model import (
    BAR_SCHEMA,
    BarFetch,
    BrokerAuthError,
    BrokerError,
    BrokerRateLimited,
    BrokerUnavailable,
)
from stock_pipelines.brokers.tokens import Token
from stock_pipelines.brokers.transport import BrokerRestClient, env_pair, json_body, retry_policy, send
from stock_pipelines.market import SEOUL

TODAY_PATH = "/uapi/domestic-stock/v1/quotations/inquire-time-itemchartprice"
PAST_PATH = "/uapi/domestic-stock/v1/quotations/inquire-time-dailychartprice"
TODAY_TR_ID = "FHKST03010200"
PAST_TR_ID = "FHKST03010230"
PERIOD_PATH = "/uapi/domestic-stock/v1/quotations/inquire-daily-itemchartprice"
PERIOD_TR_ID = "FHKST03010100"
TODAY_PAGE = 30
PAST_PAGE = 120
RATE_LIMITED = "EGW00201"
TOKEN_EXPIRED = "EGW00123"
TOKEN_INVALID = "EGW00121"
TOKEN_TOO_OFTEN = "EGW00133"
ONE_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class KisCredentials:
    app_key: str
    app_secret: str = field(repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str | None], prefix: str = "KIS") -> KisCredentials:
        return cls(*env_pair(env, "KIS", f"{prefix}_APP_KEY", f"{prefix}_APP_SECRET"))


class KisClient(BrokerRestClient):
    name = "kis"
    credentials: KisCredentials
    custtype = "P"  # the customer type header: P individual (B would be a corporate account)

    # -- public --------------------------------------------------------------------------

    def minute_bars(self, symbol: str, day: date, start: datetime, end: datetime) -> BarFetch:
        """Bars of `symbol` with minute in [start, end), paging newest-first from `end`."""
        now = self.now().astimezone(SEOUL)
        is_today = day == now.date()
        if is_today:
            # The bar of the current minute is still forming: never take it as final.
            end = min(end, now.replace(second=0, microsecond=0))
        calls = 0
        rejected: Counter[str] = Counter()
        rows: list[dict[str, object]] = []
        cursor = end - timedelta(seconds=1)
        while cursor >= start:
            page = self._page(symbol, day, cursor, is_today)
            calls += 1
            if not page:
                break
            rows.extend(page)
            minutes = [r["minute"] for r in page if isinstance(r.get("minute"), datetime)]
            oldest = min(minutes, default=None)
            if oldest is None or len(page) < (TODAY_PAGE if is_today else PAST_PAGE):
                break
            cursor = oldest - timedelta(seconds=1)
        bars = build_bars(rows, symbol, start, end, f"rest_{self.name}", rejected)
        return BarFetch(bars=bars, calls=calls, rejected=rejected)

    def day_volume(self, symbol: str, day: date) -> int | None:
        """The broker's reported traded volume of `symbol` on `day` (one call), None when it
        reports no trading that day. Today's figure grows until the close: the caller decides
        whether the session is over."""
        params = {
            "FID_COND_MRKT_DIV_CODE": "J",
            "FID_INPUT_ISCD": symbol,
            "FID_INPUT_DATE_1": f"{day:%Y%m%d}",
            "FID_INPUT_DATE_2": f"{day:%Y%m%d}",
            "FID_PERIOD_DIV_CODE": "D",
            "FID_ORG_ADJ_PRC": "1",  # 1: original prices, not adjusted for later splits (0 adjusts)
        }
        body = self._call(PERIOD_PATH, PERIOD_TR_ID, params)
        rows = body.get("output2") or []
        if not isinstance(rows, list):
            raise BrokerError(f"KIS {PERIOD_TR_ID}: output2 is {type(rows).__name__}, expected a list")
        for row in rows:
            if isinstance(row, dict) and row.get("stck_bsop_date") == f"{day:%Y%m%d}":
                try:
                    volume = int(str(row["acml_vol"]))
                except (KeyError, ValueError):
                    raise BrokerError(f"KIS {PERIOD_TR_ID}: {symbol} {day}: acml_vol {row.get('acml_vol')!r} "
                                      "is not a whole number") from None
                if volume < 0:
                    raise BrokerError(f"KIS {PERIOD_TR_ID}: {symbol} {day}: negative acml_vol {volume}")
                return volume
        return None

    # -- one page ------------------------------------------------------------------------

    def _page(self, symbol: str, day: date, cursor: datetime, is_today: bool) -> list[dict[str, object]]:
        params = {
            "FID_COND_MRKT_DIV_CODE": "J",
            "FID_INPUT_ISCD": symbol,
            "FID_INPUT_HOUR_1": f"{cursor:%H%M%S}",
            "FID_PW_DATA_INCU_YN": "Y",
        }
        if is_today:
            path, tr_id = TODAY_PATH, TODAY_TR_ID
            params["FID_ETC_CLS_CODE"] = ""
        else:
            path, tr_id = PAST_PATH, PAST_TR_ID
            params["FID_INPUT_DATE_1"] = f"{day:%Y%m%d}"
            params["FID_FAKE_TICK_INCU_YN"] = ""
        body = self._call(path, tr_id, params)
        output = body.get("output2")
        if output is None:
            return []
        if not isinstance(output, list):
            raise BrokerError(f"KIS {tr_id}: output2 is {type(output).__name__}, expected a list")
        return [self._row(item) for item in output if isinstance(item, dict) and any(item.values())]

    @staticmethod
    def _row(item: dict[str, object]) -> dict[str, object]:
        try:
            minute: datetime | None = seoul_minute(str(item["stck_bsop_date"]), str(item["stck_cntg_hour"]))
        except (KeyError, ValueError):
            minute = None
        return {
            "minute": minute,
            "open": item.get("stck_oprc"),
            "high": item.get("stck_hgpr"),
            "low": item.get("stck_lwpr"),
            "close": item.get("stck_prpr"),
            "volume": item.get("cntg_vol"),
        }

    def quotation(self, path: str, tr_id: str, params: dict[str, str]) -> dict:
        """One quotation call (token, shared rate limit, retries): the reply's body."""
        return self._call(path, tr_id, params)

    def _call(self, path: str, tr_id: str, params: dict[str, str]) -> dict:
        refused: Token | None = None
        for attempt in retry_policy(self.max_attempts, self.retries):
            with attempt:
                token = self.tokens.get(self._issue_token, refused=refused)
                body = self._request(path, tr_id, params, token)
                code = str(body.get("msg_cd", ""))
                if code in (TOKEN_EXPIRED, TOKEN_INVALID) and refused is None:
                    refused = token  # one fresh token, then the next attempt
                    raise BrokerUnavailable(f"KIS token refused ({code}); reissuing")
                if code in (TOKEN_EXPIRED, TOKEN_INVALID):
                    raise BrokerAuthError(f"KIS refused a freshly issued token ({code}: {body.get('msg1')})")
                return body
        raise AssertionError("unreachable: tenacity reraises")

    def _request(self, path: str, tr_id: str, params: dict[str, str], token: Token) -> dict:
        headers = {
            "content-type": "application/json; charset=utf-8",
            "authorization": f"Bearer {token.value}",
            "appkey": self.credentials.app_key,
            "appsecret": self.credentials.app_secret,
            "tr_id": tr_id,
            "custtype": self.custtype,
        }
        response = self.send_counted(lambda: self.http.get(f"{self.base_url}{path}", params=params, headers=headers),
                                     f"KIS {tr_id}")
        body = json_body(response, f"KIS {tr_id}")
        code = str(body.get("msg_cd", ""))
        if code == RATE_LIMITED:
            raise BrokerRateLimited(f"KIS {tr_id}: {RATE_LIMITED} over the rate limit")
        if code in (TOKEN_EXPIRED, TOKEN_INVALID):
            return body
        if response.status_code in (401, 403):
            raise BrokerAuthError(f"KIS {tr_id}: HTTP {response.status_code} {code} {body.get('msg1', '')}".strip())
        if response.status_code >= 500:
            raise BrokerUnavailable(f"KIS {tr_id}: HTTP {response.status_code} {code}".strip())
        if str(body.get("rt_cd")) != "0":
            raise BrokerError(f"KIS {tr_id}: {code} {body.get('msg1', '')}".strip())
        return body

    def _issue_token(self) -> Token:
        request = {
            "grant_type": "client_credentials",
            "appkey": self.credentials.app_key,
            "appsecret": self.credentials.app_secret,
        }
        response = send(lambda: self.http.post(f"{self.base_url}/oauth2/tokenP", json=request), "KIS token")
        body = json_body(response, "KIS token")
        if body.get("access_token"):
            issued = time.time()
            lifetime = float(body.get("expires_in") or 86400)
            return Token(value=str(body["access_token"]), expires_at=issued + lifetime, issued_at=issued)
        code = str(body.get("error_code") or body.get("msg_cd") or "")
        if code == TOKEN_TOO_OFTEN:
            raise BrokerRateLimited("KIS token: issued less than a minute ago (EGW00133)")
        if response.status_code >= 500 and not code:
            raise BrokerUnavailable(f"KIS token: HTTP {response.status_code}")
        message = body.get("error_description") or body.get("msg1") or f"HTTP {response.status_code}"
        raise BrokerAuthError(f"KIS token refused: {code} {message}".strip())


def empty_bars() -> pl.DataFrame:
    return pl.DataFrame(schema=BAR_SCHEMA)
