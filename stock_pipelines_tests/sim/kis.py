"""A minimal KIS REST/WebSocket client for the simulator tests: plain httpx and websockets calls,
written from the KIS documentation, so the tests exercise the wire protocol, not server internals."""

from __future__ import annotations

import json
import time

import httpx

ITEMCHART = "/uapi/domestic-stock/v1/quotations/inquire-time-itemchartprice"
DAILYCHART = "/uapi/domestic-stock/v1/quotations/inquire-time-dailychartprice"
PERIODCHART = "/uapi/domestic-stock/v1/quotations/inquire-daily-itemchartprice"


def token(client: httpx.Client, appkey: str = "key-1", appsecret: str = "secret-1") -> httpx.Response:
    return client.post(
        "/oauth2/tokenP", json={"grant_type": "client_credentials", "appkey": appkey, "appsecret": appsecret}
    )


def headers(access_token: str, tr_id: str, appkey: str = "key-1", appsecret: str = "secret-1") -> dict[str, str]:
    return {
        "content-type": "application/json; charset=utf-8",
        "authorization": f"Bearer {access_token}",
        "appkey": appkey,
        "appsecret": appsecret,
        "tr_id": tr_id,
        "custtype": "P",
    }


def itemchart(client: httpx.Client, access_token: str, symbol: str, hour: str, appkey: str = "key-1") -> httpx.Response:
    return client.get(
        ITEMCHART,
        headers=headers(access_token, "FHKST03010200", appkey),
        params={
            "FID_ETC_CLS_CODE": "",
            "FID_COND_MRKT_DIV_CODE": "J",
            "FID_INPUT_ISCD": symbol,
            "FID_INPUT_HOUR_1": hour,
            "FID_PW_DATA_INCU_YN": "N",
        },
    )


def dailychart(client: httpx.Client, access_token: str, symbol: str, yyyymmdd: str, hour: str,
               past: str = "N") -> httpx.Response:
    return client.get(
        DAILYCHART,
        headers=headers(access_token, "FHKST03010230"),
        params={
            "FID_COND_MRKT_DIV_CODE": "J",
            "FID_INPUT_ISCD": symbol,
            "FID_INPUT_HOUR_1": hour,
            "FID_INPUT_DATE_1": yyyymmdd,
            "FID_PW_DATA_INCU_YN": past,
            "FID_FAKE_TICK_INCU_YN": "",
        },
    )


def periodchart(client: httpx.Client, access_token: str, symbol: str, first: str, last: str,
                period: str = "D") -> httpx.Response:
    return client.get(
        PERIODCHART,
        headers=headers(access_token, "FHKST03010100"),
        params={
            "FID_COND_MRKT_DIV_CODE": "J",
            "FID_INPUT_ISCD": symbol,
            "FID_INPUT_DATE_1": first,
            "FID_INPUT_DATE_2": last,
            "FID_PERIOD_DIV_CODE": period,
            "FID_ORG_ADJ_PRC": "0",
        },
    )


def previous_minute(hhmmss: str) -> str:
    minutes = int(hhmmss[:2]) * 60 + int(hhmmss[2:4]) - 1
    return f"{minutes // 60:02d}{minutes % 60:02d}00"


def page_back_today(client: httpx.Client, access_token: str, symbol: str) -> tuple[list[dict], int]:
    """Page FHKST03010200 back from 15:30:00 until no bars remain: (bars oldest first, calls)."""
    bars: list[dict] = []
    hour, calls = "153000", 0
    while True:
        reply = itemchart(client, access_token, symbol, hour)
        calls += 1
        if reply.json().get("msg_cd") == "EGW00201":  # over the per-second limit: as against KIS, wait and retry
            time.sleep(1.0 - time.time() % 1.0)
            calls -= 1
            continue
        assert reply.json()["rt_cd"] == "0", reply.text
        rows = reply.json()["output2"]
        if not rows:
            return bars[::-1], calls
        bars += rows
        if len(rows) < 30:
            return bars[::-1], calls
        hour = previous_minute(rows[-1]["stck_cntg_hour"])


def subscribe(approval_key: str, symbol: str, tr_type: str = "1") -> str:
    return json.dumps(
        {
            "header": {"approval_key": approval_key, "custtype": "P", "tr_type": tr_type, "content-type": "utf-8"},
            "body": {"input": {"tr_id": "H0STCNT0", "tr_key": symbol}},
        }
    )


def approval(client: httpx.Client, appkey: str = "key-1", secret: str = "secret-1") -> str:
    reply = client.post("/oauth2/Approval", json={"grant_type": "client_credentials", "appkey": appkey, "secretkey": secret})
    return reply.json()["approval_key"]


def bar_tuple(row: dict) -> tuple:
    return (row["stck_cntg_hour"], int(row["stck_oprc"]), int(row["stck_hgpr"]), int(row["stck_lwpr"]),
            int(row["stck_prpr"]), int(row["cntg_vol"]))
