"""A diagnosis: the links from dom0 to a guest's Docker engine, each passed,
failed or skipped, and the Chain that runs the checks in order to record them.

diagnose.py (the entry point and the SSH chain) and diagnose_tls.py (the TLS
chain) both write through a Chain; their callers read the Report.
"""

from typing import Callable, List, Optional, TypeVar

from xscontainer import errors

T = TypeVar("T")


class Step:
    """One link of the chain and how its check went."""

    def __init__(self, title: str, ok: Optional[bool], detail: str = "",
                 warning: bool = False) -> None:
        self.title = title
        self.ok = ok  # None: not checked because an earlier step failed
        self.detail = detail
        self.warning = warning  # passed, but needs attention soon (e.g. a certificate expires)

    def line(self) -> str:
        mark = "WARN" if self.ok and self.warning else {True: " OK ", False: "FAIL",
                                                        None: "SKIP"}[self.ok]
        text = "  [%s] %s" % (mark, self.title)
        if self.detail:
            text += ": " + self.detail
        return text


class Report:
    """The steps of one diagnosis, in order."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.steps: List[Step] = []

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    @property
    def failure(self) -> Optional[Step]:
        for step in self.steps:
            if step.ok is False:
                return step
        return None

    def text(self) -> str:
        lines = ["Container management diagnosis for %s" % self.where]
        lines.extend(step.line() for step in self.steps)
        failure = self.failure
        if failure is None:
            lines.append("Result: container management works for this VM.")
        else:
            lines.append("Result: container management cannot work until this is fixed: %s."
                         % failure.title)
        return "\n".join(lines)


class Chain:
    """Runs checks in order, recording a Step for each in `report`; after the
    first failure the rest are recorded as skipped, not run."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self._broken = False

    @property
    def broken(self) -> bool:
        """Whether a step has failed (every later check is skipped)."""
        return self._broken

    def check(self, title: str, run: Callable[[], T],
              describe: Callable[[T], str] = lambda _: "",
              warning: Callable[[T], bool] = lambda _: False) -> Optional[T]:
        """Run one check: its value, or None when it failed or was skipped.

        An XSContainerError from `run` fails the step with the error's message
        (other exceptions propagate). A passed step's detail is `describe(value)`;
        `warning(value)` says whether it needs attention soon.
        """
        if self._broken:
            self.report.steps.append(Step(title, None))
            return None
        try:
            value = run()
        except errors.XSContainerError as exc:
            self.fail(title, exc.message)
            return None
        self.report.steps.append(Step(title, True, describe(value), warning(value)))
        return value

    def fail(self, title: str, detail: str) -> None:
        """Record a failed step (found without a check of its own)."""
        self._broken = True
        self.report.steps.append(Step(title, False, detail))

    def skip_rest(self, planned: List[str]) -> None:
        """List the planned checks that an earlier failure kept from running."""
        done = {step.title for step in self.report.steps}
        self.report.steps.extend(Step(title, None) for title in planned if title not in done)
