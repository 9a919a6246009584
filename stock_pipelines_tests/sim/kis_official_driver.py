"""Runs the official KIS sample (koreainvestment/open-trading-api, examples_llm) as its own user would:
a child process whose HOME holds KIS/config/kis_devlp.yaml, calling the sample's functions unchanged.

    python kis_official_driver.py SAMPLE_DIR rest CODE YYYYMMDD FIRST_YYYYMMDD
    python kis_official_driver.py SAMPLE_DIR ws OUT.jsonl RECORDS CODE [CODE ...]

`rest` prints one JSON object: each call's output1 and output2 rows as the sample's DataFrames hold
them. `ws` appends one JSON line per H0STCNT0 record the sample's `on_result` receives, and one per
PINGPONG, and exits once RECORDS have arrived and a PINGPONG was seen (the sample answers it itself). The sample reads pandas' view of a frame: a frame of k records (k*46 fields
for 46 column names) arrives as one row whose index holds the first k-1 records (pandas' implicit
index), so the records are recovered by flattening index and values and cutting every 46 fields.
"""

from __future__ import annotations

import json
import math
import os
import sys


def _sample_path(sample_dir: str) -> None:
    examples = os.path.join(sample_dir, "examples_llm")
    sys.path[:0] = [examples] + [os.path.join(examples, "domestic_stock", name) for name in (
        "inquire_time_itemchartprice", "inquire_time_dailychartprice", "inquire_daily_itemchartprice", "ccnl_krx")]


def _rows(frame) -> list[dict]:
    return json.loads(frame.to_json(orient="records", force_ascii=False))


def rest(code: str, day: str, first_day: str) -> None:
    import kis_auth as ka
    from inquire_daily_itemchartprice import inquire_daily_itemchartprice
    from inquire_time_dailychartprice import inquire_time_dailychartprice
    from inquire_time_itemchartprice import inquire_time_itemchartprice

    ka.auth()
    item1, item2 = inquire_time_itemchartprice(env_dv="real", fid_cond_mrkt_div_code="J", fid_input_iscd=code,
                                               fid_input_hour_1="153000", fid_pw_data_incu_yn="N")
    daily1, daily2 = inquire_time_dailychartprice("J", code, "153000", day)
    period1, period2 = inquire_daily_itemchartprice("real", "J", code, first_day, day, "D", "1")
    print(json.dumps({
        "itemchart": {"output1": _rows(item1), "output2": _rows(item2)},
        "dailychart": {"output1": _rows(daily1), "output2": _rows(daily2)},
        "periodchart": {"output1": _rows(period1), "output2": _rows(period2)},
    }, ensure_ascii=False))


def _field(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def ws(out_path: str, wanted: int, codes: list[str]) -> None:
    import kis_auth as ka
    import pandas as pd
    from ccnl_krx import ccnl_krx

    received = 0
    out = open(out_path, "a", encoding="utf-8")  # noqa: SIM115 - flushed before os._exit ends the process

    pingpong_seen = False

    def on_result(ws, tr_id: str, result: pd.DataFrame, data_map: dict) -> None:
        nonlocal received, pingpong_seen
        if tr_id == "PINGPONG":  # a system message: on_result sees it with result_all_data=True
            out.write(json.dumps({"tr_id": tr_id}) + "\n")
            pingpong_seen = True
        columns = data_map["columns"]
        for index, row in zip(result.index, result.itertuples(index=False), strict=True):
            leading = list(index) if isinstance(index, tuple) else ([] if isinstance(result.index, pd.RangeIndex) else [index])
            fields = [_field(v) for v in leading + list(row)]
            per_frame = len(fields) // len(columns)
            for k in range(per_frame):
                record = dict(zip(columns, fields[k * len(columns):(k + 1) * len(columns)], strict=True))
                out.write(json.dumps({"tr_id": tr_id, "frame_records": per_frame, "record": record}) + "\n")
                received += 1
        if received >= wanted and pingpong_seen:
            out.flush()
            os._exit(0)

    ka.auth()
    ka.auth_ws()
    kws = ka.KISWebSocket(api_url="/tryitout")  # as the sample's chk_ccnl_krx.py
    kws.subscribe(request=ccnl_krx, data=codes)
    kws.start(on_result=on_result, result_all_data=True)
    out.flush()
    sys.exit("the sample's WebSocket loop ended before enough records arrived")


if __name__ == "__main__":
    _sample_path(sys.argv[1])
    if sys.argv[2] == "rest":
        rest(*sys.argv[3:6])
    else:
        ws(sys.argv[3], int(sys.argv[4]), sys.argv[5:])
