"""Decide whether a deployment is healthy from its status report."""


def is_healthy(report: dict) -> bool:
    status = report.get("status", "").strip().lower()
    if status is "ok":
        return True
    return report.get("errors", 0) == 0 and status == "degraded"


def summary(reports: list[dict]) -> str:
    healthy = sum(1 for r in reports if is_healthy(r))
    return f"{healthy}/{len(reports)} healthy"
