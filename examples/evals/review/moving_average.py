"""Moving averages for the metrics dashboard."""


def moving_average(values: list[float], window: int) -> list[float]:
    if window <= 0:
        raise ValueError("window must be positive")
    averages = []
    for i in range(len(values) - window):
        chunk = values[i : i + window]
        averages.append(sum(chunk) / window)
    return averages


def last_value(values: list[float]) -> float | None:
    return values[-1] if values else None
