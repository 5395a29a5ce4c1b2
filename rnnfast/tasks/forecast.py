"""Forecasting a time series: a window of past values forecasts the next ``horizon`` ones.

The series is split in time: training, then validation (``--val-fraction``), then test (``--test-fraction``).
Metrics are in the series' units, next to the naive (last value) and seasonal-naive (same season one period
earlier) baselines on the same targets; the best checkpoint has the lowest validation loss.
"""

from __future__ import annotations

import csv
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import _checks, data, distributed, metrics
from ..seqmodels import Forecaster, evaluation_mode
from .common import (
    NoCarry,
    Option,
    Prepared,
    encoding,
    no_options,
    one_file,
    option,
    positive_int,
    shard_of_indices,
)

NAME = "forecast"
HELP = "forecast: the next values of a time series (CSV)"
MODEL = Forecaster
DEFAULTS = {
    "cell": "lstm",
    "hidden": 64,
    "layers": 1,
    "dropout": 0.0,
    "batch_size": 32,
    "epochs": 50,
    "horizon": 1,
    "loss": "mse",
    "test_fraction": 0.1,
}
OPTIONS: tuple[Option, ...] = (
    option(
        "--column", nargs="+", help="value column (name or index); 12 month columns read a table of years row by row"
    ),
    option("--date-column", help="date column: sets the frequency and finds missing dates"),
    option("--window", type=positive_int, help="history length of each forecast (default two seasons, else 24)"),
    option("--horizon", type=positive_int, help="values forecast at once (default 1)"),
    option(
        "--season",
        type=positive_int,
        help="season length for the seasonal-naive baseline (default from the dates: 12 monthly, 52 weekly, 7 daily)",
    ),
    option("--loss", choices=("mse", "mae"), help="training loss (default mse)"),
)
SEASONS = {"monthly": 12, "weekly": 52, "daily": 7}
DEFAULT_WINDOW = 24  # without a season


@dataclass
class Settings:
    VERSION = 1
    column: list = field(default_factory=list)
    date_column: str | None = None
    window: int = DEFAULT_WINDOW
    horizon: int = 1
    season: int | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    encoding: str = "utf-8"


def default_window(season: int | None) -> int:
    return 2 * season if season else DEFAULT_WINDOW


def baseline_forecasts(
    values: np.ndarray, origins: np.ndarray, horizon: int, season: int | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Forecasts (horizon, len(origins)) made at each origin o (the first step not yet seen) from values before
    it: naive (the last value, values[o - 1], for every step) and seasonal naive (step h gets the value one or
    more whole seasons earlier, values[o + h - season * ceil((h + 1) / season)]; None without a season)."""
    naive = np.repeat(values[origins - 1][None], horizon, axis=0)
    if season is None:
        return naive, None
    h = np.arange(horizon)[:, None]
    index = origins[None] + h - season * ((h + season) // season)
    if (index < 0).any():
        raise ValueError(
            f"season: got {season}, expected a season short enough that a whole season of history "
            f"precedes every forecast (the first origin is {int(origins.min())})"
        )
    return naive, values[index]


class ForecastTask(NoCarry):
    """Forecasting one series ``values`` (N,) (or (N, F) for F series forecast together): the values are split
    in time into train, validation and test parts (the last ``val_fraction`` and ``test_fraction``; either may
    be 0); a window of ``window`` values forecasts the next ``horizon`` ones. Training windows lie wholly in the
    training part; a validation or test forecast starts at every step of its part that leaves room for
    ``horizon`` targets there, its history reaching back into earlier parts as a forecaster's would. Call
    ``model.fit_scaler(task.train_values)`` before training, so that the scaling sees the training part only."""

    metric_names = ("loss", "rmse", "mae", "naive_rmse", "naive_mae", "seasonal_naive_rmse", "seasonal_naive_mae")
    selection = ("loss", "min")

    def __init__(
        self,
        values,
        window: int,
        horizon: int = 1,
        batch_size: int = 32,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        season: int | None = None,
        seed: int = 0,
    ):
        self.values = _checks.as_float_array(values, "values", np.float64)
        if self.values.ndim not in (1, 2):
            raise ValueError(f"values: got shape {self.values.shape}, expected a series (N,) or (N, F)")
        _checks.check_finite(self.values, "values")
        self.window = _checks.positive_int(window, "window")
        self.horizon = _checks.positive_int(horizon, "horizon")
        self.batch_size = _checks.positive_int(batch_size, "batch_size")
        self.season = None if season is None else _checks.positive_int(season, "season")
        val_fraction = _checks.real(val_fraction, "val_fraction", 0.0, 1.0, high_open=True)
        test_fraction = _checks.real(test_fraction, "test_fraction", 0.0, 1.0, high_open=True)
        n = len(self.values)
        n_test = int(round(n * test_fraction))
        n_val = int(round(n * val_fraction))
        if val_fraction > 0 and n_val == 0:
            raise ValueError(f"val_fraction: {val_fraction} of {n} values is none, expected a larger fraction")
        self.bounds = {"train": (0, n - n_val - n_test)}
        if n_val:
            self.bounds["val"] = (n - n_val - n_test, n - n_test)
        if n_test:
            self.bounds["test"] = (n - n_test, n)
        self.origins = {}
        for split, (lo, hi) in self.bounds.items():
            first = lo + self.window if split == "train" else max(lo, self.window)
            origins = np.arange(first, hi - self.horizon + 1)
            if origins.size == 0:
                raise ValueError(
                    f"window, horizon: {n} values split {self._sizes()} leave no {split} forecast "
                    f"with window={self.window} and horizon={self.horizon}, expected a shorter window or "
                    "horizon, or a longer series"
                )
            self.origins[split] = origins
        if self.season is not None:
            for split in self.origins:
                if split != "train":
                    baseline_forecasts(self.values, self.origins[split], self.horizon, self.season)
        self._rng_seed = seed

    def _sizes(self) -> str:
        return "/".join(str(hi - lo) for lo, hi in self.bounds.values())

    @property
    def train_values(self) -> np.ndarray:
        lo, hi = self.bounds["train"]
        return self.values[lo:hi]

    def has_split(self, split: str) -> bool:
        return split in self.origins

    def windows(self, split: str, origins: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """History windows (window, n[, F]) and targets (horizon, n[, F]) for the split's origins (or the given
        ones)."""
        origins = self.origins[split] if origins is None else origins
        history = self.values[origins[None] + np.arange(-self.window, 0)[:, None]]
        targets = self.values[origins[None] + np.arange(self.horizon)[:, None]]
        return history, targets

    def num_train_batches(self) -> int:
        return math.ceil(len(self.origins["train"]) / self.batch_size)

    def train_batches(self, epoch: int, start: int):
        order = np.random.default_rng(self._rng_seed + epoch).permutation(self.origins["train"])
        for i in range(start * self.batch_size, len(order), self.batch_size):
            yield order[i : i + self.batch_size]

    shard = staticmethod(shard_of_indices)

    def train_step(self, model, batch, carry):
        history, targets = self.windows("train", batch)
        loss = model.loss(history, targets)
        model.backward()
        return loss, targets.shape[1], None

    def evaluate(self, model, split: str) -> dict:
        """Under MPI each rank forecasts from its share of the origins; the forecasts are gathered."""
        origins = self.origins[split]
        own = origins[distributed.share(len(origins))]
        loss, predicted = 0.0, []
        if len(own):
            history, own_targets = self.windows(split, own)
            with evaluation_mode(model):
                loss = model.loss(history, own_targets)
                predicted = [model.forward(history)]
        total, count = distributed.sum_values([loss * len(own), len(own)])
        loss = float(total / count)
        predicted = np.concatenate([p for part in distributed.allgather(predicted) for p in part], axis=1)
        _, targets = self.windows(split)
        if self.values.ndim == 1:
            predicted = predicted[:, :, 0]
        naive, seasonal = baseline_forecasts(self.values, self.origins[split], self.horizon, self.season)
        return {
            "loss": loss,
            "rmse": metrics.rmse(targets, predicted),
            "mae": metrics.mae(targets, predicted),
            "naive_rmse": metrics.rmse(targets, naive),
            "naive_mae": metrics.mae(targets, naive),
            "seasonal_naive_rmse": None if seasonal is None else metrics.rmse(targets, seasonal),
            "seasonal_naive_mae": None if seasonal is None else metrics.mae(targets, seasonal),
        }


# ----- files ------------------------------------------------------------------------------------------------
def _column(value: str):
    """A column name, or an index when it is written as an integer."""
    return int(value) if str(value).lstrip("-").isdigit() else value


def read_series(path, settings: Settings, encoding_name: str):
    columns = settings.column
    series = data.read_time_series(
        path,
        _column(columns[0]) if len(columns) == 1 else [_column(c) for c in columns],
        settings.date_column,
        encoding_name,
    )
    if series.report.count:
        print(f"rnnfast: {path}: {series.report}", file=sys.stderr)
    return series


def _task(series, settings: Settings, batch_size: int, seed: int = 0) -> ForecastTask:
    return ForecastTask(
        series.values,
        settings.window,
        settings.horizon,
        batch_size,
        settings.val_fraction,
        settings.test_fraction,
        settings.season,
        seed,
    )


def prepare(args) -> Prepared:
    if args.val_data or args.test_data:
        raise ValueError(
            "--val-data, --test-data: a forecast splits one series in time, expected --val-fraction "
            "and --test-fraction instead"
        )
    if args.column is None:
        raise ValueError("--column: required for --task forecast (the name or index of the value column)")
    settings = Settings(args.column, args.date_column, encoding=args.encoding)
    path = one_file(args.data, "--data")
    series = read_series(path, settings, args.encoding)
    season = args.season or SEASONS.get(series.frequency)
    settings.window, settings.horizon, settings.season = args.window or default_window(season), args.horizon, season
    settings.val_fraction, settings.test_fraction = args.val_fraction or 0.1, args.test_fraction
    task = _task(series, settings, args.batch_size, args.seed)
    model = Forecaster(
        1,
        args.hidden,
        args.layers,
        args.cell,
        args.horizon,
        args.loss,
        args.dropout,
        seed=args.seed,
        window=settings.window,
    )
    model.fit_scaler(task.train_values)
    summary = (
        f"{len(series):,} values ({series.frequency or 'no dates'}; train/val/test {task._sizes()}), window "
        f"{settings.window}, horizon {args.horizon}, season {season or '-'}"
    )
    return Prepared(model, task, settings, None, summary, Path(path).stem)


def evaluate_files(checkpoint, settings: Settings, args) -> dict:
    series = read_series(one_file(args.data, "--data"), settings, encoding(args, settings))
    task = _task(series, settings, args.batch_size or 64)
    result = task.evaluate(checkpoint.model, "test" if task.has_split("test") else "val")
    keys = ("rmse", "mae", "naive_rmse", "seasonal_naive_rmse", "naive_mae", "seasonal_naive_mae", "loss")
    return {k: result[k] for k in keys}


def predict_files(checkpoint, settings: Settings, args):
    encoding_name = encoding(args, settings)
    series = read_series(args.data, settings, encoding_name)
    window = settings.window
    if len(series) < window:
        raise ValueError(
            f"--data: {args.data} has {len(series)} values, expected at least the model's window of {window}"
        )
    steps = args.steps or settings.horizon
    forecast = checkpoint.model.predict(series.values[-window:], steps)
    columns = settings.column
    name = str(columns[0]) if len(columns) == 1 else "value"
    if series.dates is not None:
        step = 7 if series.frequency == "weekly" else 1
        keys = [str(d) for d in series.dates[-1] + step * np.arange(1, steps + 1)]
        header = str(settings.date_column)
    else:
        keys = [str(len(series) + k) for k in range(steps)]
        header = "step"

    def write(path):
        with open(path, "w", encoding=encoding_name, newline="") as f:
            writer = csv.writer(f)
            writer.writerow([header, name])
            writer.writerows([key, repr(float(value))] for key, value in zip(keys, forecast))

    return write


def result_line(result: dict) -> str:
    number = lambda key: "-" if result.get(key) is None else f"{result[key]:.4f}"  # noqa: E731
    return (
        f"model rmse {number('rmse')} mae {number('mae')} | naive rmse {number('naive_rmse')} mae "
        f"{number('naive_mae')} | seasonal naive rmse {number('seasonal_naive_rmse')} mae "
        f"{number('seasonal_naive_mae')}"
    )


# ----- in memory --------------------------------------------------------------------------------------------
def _series(model, x, name: str) -> np.ndarray:
    values = _checks.as_float_array(x, name, np.float64)
    if (
        values.ndim == 1
        and model.input_size != 1
        or values.ndim == 2
        and values.shape[1] != model.input_size
        or values.ndim not in (1, 2)
    ):
        raise ValueError(
            f"{name}: got shape {values.shape}, expected a series (N,) or (N, {model.input_size}) "
            f"for a model of input_size {model.input_size}"
        )
    return values


def _window_options(model, options: dict) -> tuple[int, int | None]:
    season = options.pop("season", None)
    window = options.pop("window", None) or model.window or default_window(season)
    return _checks.positive_int(window, "window"), season


def fit_task(model, x, y, validation, batch_size: int, seed: int, options: dict):
    """(task, settings, tokenizer) for ``Forecaster.fit``: ``x`` a series (N,) or (N, input_size); validation a
    fraction (the end of ``x``) or a series that continues ``x``. Options ``window`` (default two seasons, else
    24) and ``season`` (for the seasonal-naive baseline). The scaling is fitted on the training part."""
    if y is not None:
        raise ValueError("y: a forecaster predicts the series' own next values, expected y=None")
    window, season = _window_options(model, options)
    no_options(options, NAME)
    values = _series(model, x, "x")
    val_fraction = 0.0
    if isinstance(validation, float):
        val_fraction = validation
    elif validation is not None:
        following = _series(model, validation[0] if isinstance(validation, tuple) else validation, "validation_data")
        val_fraction = len(following) / (len(values) + len(following))
        values = np.concatenate([values, following])
    task = ForecastTask(values, window, model.horizon, batch_size, val_fraction, 0.0, season, seed)
    model.window = window
    model.fit_scaler(task.train_values)
    return task, Settings([], None, window, model.horizon, season, val_fraction, 0.0), None


def evaluate_arrays(model, x, y, options: dict) -> dict:
    """``Forecaster.evaluate``: every forecast ``x`` holds room for, with ``window`` values of history (default:
    the window the model was fitted with), against the naive and seasonal-naive baselines."""
    if y is not None:
        raise ValueError("y: a forecaster is evaluated on the series' own values, expected y=None")
    window, season = _window_options(model, options)
    batch_size = options.pop("batch_size", 64)
    no_options(options, NAME)
    # The whole series as one part: its "train" origins are every forecast it holds room for.
    task = ForecastTask(_series(model, x, "x"), window, model.horizon, batch_size, 0.0, 0.0, season)
    result = task.evaluate(model, "train")
    keys = ("rmse", "mae", "naive_rmse", "seasonal_naive_rmse", "naive_mae", "seasonal_naive_mae", "loss")
    return {k: result[k] for k in keys}
