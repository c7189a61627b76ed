#!/usr/bin/env python3
"""Write a seeded demo stock market as the CSV files `predictd import features|calendar` reads
(issue 6, the market pipeline; the format is the contract's):

  features.csv           symbol,timestamp,price,t0..t19          the symbols without an
                                                                   earnings analysis
  features_earnings.csv  symbol,timestamp,price,t0..t19,e0..e16  the symbols with one
                 one row per symbol and daily bar: the last --steps trading days before --date,
                 oldest first, at the 16:00 New York close written as 21:00:00Z
  calendar.csv   symbol,date,time            time: bmo | amc | unknown
  market.json    what was written: the trading day, the seed, the counts, a few symbols
                 (the first of today's bmo and amc reporters, the first normal one)

Prices are geometric random walks (a drift and a volatility per symbol, a market factor
shared by all, fat-tailed shocks); the 20 technical features are computed from each walk:

  t0  1-day log return            t10 RSI(14), 0..100
  t1  5-day log return            t11 MACD line (EMA12 - EMA26) / price
  t2  10-day log return           t12 MACD signal (EMA9 of the line)
  t3  20-day log return           t13 MACD histogram (line - signal)
  t4  price / SMA5 - 1            t14 Bollinger %B (20 days, 2 sigma)
  t5  price / SMA10 - 1           t15 log10 of the day's volume
  t6  price / SMA20 - 1           t16 volume / 20-day mean volume
  t7  SMA5 / SMA20 - 1            t17 high-low range / price
  t8  5-day volatility            t18 20-day return / (20-day volatility * sqrt(20))
  t9  20-day volatility           t19 ATR(14) / price

The 17 earnings features (symbols reporting within the next 10 trading days, today's
reporters included) describe the coming report as seen at each bar:

  e0  trading days until the report     e9  last quarter's revenue surprise
  e1  1 if before market open (bmo)     e10 30-day change of the EPS consensus
  e2  1 if after market close (amc)     e11 analysts covering
  e3  consensus EPS                     e12 options-implied move
  e4  last quarter's EPS surprise       e13 mean absolute post-report move (8 quarters)
  e5  mean EPS surprise (4 quarters)    e14 5-day return before the bar
  e6  std of EPS surprise (4 quarters)  e15 put/call ratio
  e7  beat rate (8 quarters)            e16 guidance tone, -1..1
  e8  revenue growth estimate (yoy)

Calendar: about --earnings-today (5 %) of the symbols report for --date: half before the
open on --date (bmo), half after the close of the previous trading day (amc); decoys that
must not route to the earnings model (amc on --date, bmo on the previous trading day) and
other reports spread over the surrounding weeks. Trading days skip weekends and --holidays.

Standard library only; the same arguments always write the same bytes.

  python3 scripts/gen-demo-market.py --out data/market
  python3 scripts/gen-demo-market.py --symbols 200 --steps 40 --date 2026-03-02 --out /tmp/m
"""
import argparse
import json
import datetime as dt
import math
import os
import random
import sys

N_TECH = 20
N_EARN = 17
WARMUP = 40          # bars simulated before the first written one, so every indicator is defined
EARN_HORIZON = 10    # trading days ahead within which a symbol has an earnings analysis


# ---- calendar ------------------------------------------------------------------------------

def is_trading_day(d, holidays):
    return d.weekday() < 5 and d not in holidays


def prev_trading_day(d, holidays):
    d -= dt.timedelta(days=1)
    while not is_trading_day(d, holidays):
        d -= dt.timedelta(days=1)
    return d


def next_trading_day(d, holidays):
    d += dt.timedelta(days=1)
    while not is_trading_day(d, holidays):
        d += dt.timedelta(days=1)
    return d


def trading_days_before(d, n, holidays):
    """The n trading days before d, oldest first."""
    out = []
    for _ in range(n):
        d = prev_trading_day(d, holidays)
        out.append(d)
    return out[::-1]


def trading_days_between(a, b, holidays):
    """Trading days after a up to and including b (0 when b <= a)."""
    n, d = 0, a
    while d < b:
        d = next_trading_day(d, holidays)
        if d <= b:
            n += 1
    return n


def is_earnings_day(date, rep_date, rep_time, holidays):
    """MODELS.md's rule: the report falls before the open on `date`, or after the close of
    the previous trading day."""
    if rep_time == "bmo":
        return rep_date == date
    if rep_time == "amc":
        return rep_date == prev_trading_day(date, holidays)
    return False


# ---- symbols -------------------------------------------------------------------------------

def make_symbols(rng, n):
    """n distinct ticker-like names: 3 or 4 capital letters while they last, then S00001..."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    seen, out = set(), []
    tries = 0
    while len(out) < n and tries < 20 * n:
        tries += 1
        k = 3 if rng.random() < 0.4 else 4
        s = "".join(rng.choice(letters) for _ in range(k))
        if s not in seen:
            seen.add(s)
            out.append(s)
    i = 0
    while len(out) < n:
        i += 1
        s = "S%05d" % i
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


# ---- prices and technical features ---------------------------------------------------------

def simulate(rng, n_bars, market):
    """One symbol's closes, volumes and daily ranges over n_bars bars."""
    sigma = rng.uniform(0.008, 0.035)
    beta = rng.uniform(0.5, 1.6)
    mu = rng.gauss(0.0002, 0.0006)
    price = math.exp(rng.gauss(math.log(60.0), 0.9))
    vol0 = math.exp(rng.gauss(math.log(2e6), 1.0))
    closes, volumes, ranges = [], [], []
    for i in range(n_bars):
        shock = rng.gauss(0, 1)
        if rng.random() < 0.03:  # fat tails: an occasional jump
            shock *= 3.0
        r = mu + beta * market[i] + sigma * shock - 0.5 * sigma * sigma
        price *= math.exp(r)
        closes.append(price)
        volumes.append(vol0 * math.exp(rng.gauss(0, 0.25) + 8.0 * abs(r)))
        ranges.append(price * (abs(r) + sigma * rng.uniform(0.3, 1.2)))
    return closes, volumes, ranges


def ema_series(xs, span):
    a = 2.0 / (span + 1)
    out, e = [], xs[0]
    for x in xs:
        e = a * x + (1 - a) * e
        out.append(e)
    return out


def mean(xs):
    return sum(xs) / len(xs)


def std(xs):
    m = mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs))


def technical(closes, volumes, ranges, i, macd, signal):
    """The 20 technical features at bar i (i >= 26)."""
    c = closes
    lr = [math.log(c[j] / c[j - 1]) for j in range(i - 19, i + 1)]  # the last 20 1-day returns
    sma5, sma10, sma20 = mean(c[i - 4:i + 1]), mean(c[i - 9:i + 1]), mean(c[i - 19:i + 1])
    v5, v20 = std(lr[-5:]), std(lr)
    gains = [max(c[j] - c[j - 1], 0.0) for j in range(i - 13, i + 1)]
    losses = [max(c[j - 1] - c[j], 0.0) for j in range(i - 13, i + 1)]
    g, lo = mean(gains), mean(losses)
    rsi = 100.0 if lo == 0 else 100.0 - 100.0 / (1.0 + g / lo)
    sd20 = std(c[i - 19:i + 1])
    pct_b = 0.5 if sd20 == 0 else (c[i] - (sma20 - 2 * sd20)) / (4 * sd20)
    atr = mean(ranges[i - 13:i + 1])
    r20 = math.log(c[i] / c[i - 20])
    return [
        lr[-1], math.log(c[i] / c[i - 5]), math.log(c[i] / c[i - 10]), r20,
        c[i] / sma5 - 1, c[i] / sma10 - 1, c[i] / sma20 - 1, sma5 / sma20 - 1,
        v5, v20, rsi,
        macd[i] / c[i], signal[i] / c[i], (macd[i] - signal[i]) / c[i],
        pct_b, math.log10(volumes[i]), volumes[i] / mean(volumes[i - 19:i + 1]),
        ranges[i] / c[i], 0.0 if v20 == 0 else r20 / (v20 * math.sqrt(20)), atr / c[i],
    ]


# ---- earnings features ---------------------------------------------------------------------

def earnings_profile(rng):
    """What does not change over the window: the company's earnings history."""
    surprises = [rng.gauss(0.03, 0.08) for _ in range(8)]
    return {
        "eps": rng.gauss(1.2, 0.9),
        "surprises": surprises,
        "rev_growth": rng.gauss(0.06, 0.1),
        "rev_surprise": rng.gauss(0.01, 0.03),
        "revision": rng.gauss(0.0, 0.04),
        "analysts": float(rng.randint(3, 40)),
        "implied": rng.uniform(0.02, 0.12),
        "post_move": rng.uniform(0.02, 0.10),
        "tone": rng.uniform(-1.0, 1.0),
    }


def earnings(rng, prof, days_until, rep_time, closes, i):
    s = prof["surprises"]
    return [
        float(days_until), 1.0 if rep_time == "bmo" else 0.0, 1.0 if rep_time == "amc" else 0.0,
        prof["eps"] * (1 + rng.gauss(0, 0.005)), s[0], mean(s[:4]), std(s[:4]),
        sum(1 for x in s if x > 0) / 8.0, prof["rev_growth"], prof["rev_surprise"],
        prof["revision"] + rng.gauss(0, 0.002), prof["analysts"],
        prof["implied"] * (1 + 0.05 * max(0, EARN_HORIZON - days_until)) * rng.uniform(0.95, 1.05),
        prof["post_move"], math.log(closes[i] / closes[i - 5]),
        rng.uniform(0.5, 1.5), prof["tone"],
    ]


# ---- writing -------------------------------------------------------------------------------

def fmt(x):
    return "%.6g" % x


def generate(a):
    holidays = set(a.holidays)
    date = a.date
    rng = random.Random(a.seed)
    symbols = make_symbols(rng, a.symbols)
    bars = trading_days_before(date, a.steps + WARMUP, holidays)
    written = bars[WARMUP:]
    market = [rng.gauss(0.0003, 0.009) for _ in bars]

    # The calendar: today's reporters first (exactly round(n * share)), then decoys and others.
    prev = prev_trading_day(date, holidays)
    order = list(range(len(symbols)))
    rng.shuffle(order)
    n_today = int(round(a.symbols * a.earnings_today))
    n_decoy = int(round(a.symbols * 0.01))
    n_other = int(round(a.symbols * 0.15))
    cal = {}
    for k, idx in enumerate(order[:n_today]):
        cal[idx] = (date, "bmo") if k % 2 == 0 else (prev, "amc")
    for k, idx in enumerate(order[n_today:n_today + n_decoy]):
        cal[idx] = (date, "amc") if k % 2 == 0 else (prev, "bmo")
    for idx in order[n_today + n_decoy:n_today + n_decoy + n_other]:
        d = date + dt.timedelta(days=rng.randint(-30, 45))
        while not is_trading_day(d, holidays):
            d += dt.timedelta(days=1)
        t = rng.choices(["bmo", "amc", "unknown"], [0.45, 0.45, 0.10])[0]
        if is_earnings_day(date, d, t, holidays):  # keep the share for today exact
            t = "amc" if t == "bmo" else "bmo"
        cal[idx] = (d, t)

    os.makedirs(a.out, exist_ok=True)
    fpath = os.path.join(a.out, "features.csv")
    epath = os.path.join(a.out, "features_earnings.csv")
    cpath = os.path.join(a.out, "calendar.csv")
    n_rows = n_earn = 0
    head = ["symbol", "timestamp", "price"] + ["t%d" % k for k in range(N_TECH)]
    with open(fpath + ".tmp", "w", newline="") as f, open(epath + ".tmp", "w", newline="") as fe:
        f.write(",".join(head) + "\n")
        fe.write(",".join(head + ["e%d" % k for k in range(N_EARN)]) + "\n")
        for idx, sym in enumerate(symbols):
            srng = random.Random("%d/%s" % (a.seed, sym))
            closes, volumes, ranges = simulate(srng, len(bars), market)
            macd_fast, macd_slow = ema_series(closes, 12), ema_series(closes, 26)
            macd = [x - y for x, y in zip(macd_fast, macd_slow)]
            signal = ema_series(macd, 9)
            rep = cal.get(idx)
            # an analysis exists when the report is today's or within the coming days
            has_earn = rep is not None and (
                is_earnings_day(date, rep[0], rep[1], holidays)
                or (rep[0] >= date and trading_days_between(date, rep[0], holidays) <= EARN_HORIZON))
            prof = earnings_profile(srng) if has_earn else None
            n_earn += 1 if has_earn else 0
            for j, day in enumerate(written):
                i = WARMUP + j
                row = [sym, day.isoformat() + "T21:00:00Z", fmt(closes[i])]
                row += [fmt(x) for x in technical(closes, volumes, ranges, i, macd, signal)]
                if has_earn:
                    until = trading_days_between(day, rep[0], holidays)
                    row += [fmt(x) for x in earnings(srng, prof, until, rep[1], closes, i)]
                (fe if has_earn else f).write(",".join(row) + "\n")
                n_rows += 1
    os.replace(fpath + ".tmp", fpath)
    os.replace(epath + ".tmp", epath)

    with open(cpath + ".tmp", "w", newline="") as f:
        f.write("symbol,date,time\n")
        for idx in sorted(cal):
            f.write("%s,%s,%s\n" % (symbols[idx], cal[idx][0].isoformat(), cal[idx][1]))
    os.replace(cpath + ".tmp", cpath)
    info = {"symbols": len(symbols), "rows": n_rows, "calendar": len(cal), "earnings_today": n_today,
            "with_earnings_features": n_earn, "first_bar": written[0].isoformat(),
            "last_bar": written[-1].isoformat(), "features": fpath, "features_earnings": epath,
            "calendar_file": cpath}
    normal = [symbols[i] for i in range(len(symbols)) if i not in cal]
    info.update({
        "date": date.isoformat(), "seed": a.seed, "steps": a.steps,
        "holidays": sorted(h.isoformat() for h in holidays),
        "example_bmo": next((symbols[i] for i in order[:n_today] if cal[i][1] == "bmo"), None),
        "example_amc": next((symbols[i] for i in order[:n_today] if cal[i][1] == "amc"), None),
        "example_normal": normal[0] if normal else None,
    })
    names = {k: os.path.basename(v) if k in ("features", "features_earnings", "calendar_file") else v
             for k, v in info.items()}
    with open(os.path.join(a.out, "market.json"), "w") as f:
        json.dump(names, f, indent=1, sort_keys=True)
        f.write("\n")
    return info


def parse_date(s):
    try:
        return dt.date.fromisoformat(s)
    except ValueError:
        raise argparse.ArgumentTypeError("not a YYYY-MM-DD date: %r" % s)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--symbols", "-n", type=int, default=5000, help="symbols (default 5000)")
    ap.add_argument("--steps", "-k", type=int, default=32,
                    help="daily bars per symbol, at least the models' 32 (default 32)")
    ap.add_argument("--date", type=parse_date, default=None,
                    help="the trading day the predictions are for, YYYY-MM-DD (default: today, UTC; "
                         "moved to the next trading day when it is not one)")
    ap.add_argument("--earnings-today", type=float, default=0.05,
                    help="share of the symbols that report for --date (default 0.05)")
    ap.add_argument("--holidays", default="", help="comma-separated YYYY-MM-DD days the market is closed")
    ap.add_argument("--seed", type=int, default=6, help="random seed (default 6)")
    ap.add_argument("--out", default="data/market", help="output folder (default data/market)")
    ap.add_argument("--quiet", "-q", action="store_true", help="print nothing on success")
    a = ap.parse_args(argv)
    if a.symbols < 1 or a.symbols > 1_000_000:
        ap.error("--symbols must be 1..1000000")
    if a.steps < 1 or a.steps > 10_000:
        ap.error("--steps must be 1..10000")
    if not 0 <= a.earnings_today <= 0.5:
        ap.error("--earnings-today must be 0..0.5")
    try:
        a.holidays = [dt.date.fromisoformat(h.strip()) for h in a.holidays.split(",") if h.strip()]
    except ValueError as e:
        ap.error("--holidays: %s" % e)
    if a.date is None:
        a.date = dt.datetime.now(dt.timezone.utc).date()
    while not is_trading_day(a.date, set(a.holidays)):
        a.date += dt.timedelta(days=1)
    info = generate(a)
    if not a.quiet:
        print("gen-demo-market: %(symbols)d symbols, %(rows)d feature rows (%(first_bar)s .. %(last_bar)s), "
              "%(calendar)d calendar entries, %(earnings_today)d reporting for the day, "
              "%(with_earnings_features)d with earnings features -> %(features)s, %(features_earnings)s, "
              "%(calendar_file)s" % info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
