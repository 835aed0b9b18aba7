"""What xscontainer-prepare-vm says and asks: progress on stdout, questions, the password.

Nothing secret goes through here to the terminal: the password is read without
echo (getpass) or from stdin (--password-stdin) and never printed or logged.
"""

import getpass
import io
import sys
from typing import IO, Optional

YES = ("y", "yes")
NO = ("n", "no")


class Aborted(Exception):
    """The user said no (or gave no answer); the message says what was not done."""


class Console:
    def __init__(self, assume_yes: bool = False, stdin: Optional[IO[str]] = None,
                 stdout: Optional[IO[str]] = None) -> None:
        self.assume_yes = assume_yes
        self.stdin = stdin if stdin is not None else sys.stdin
        self.stdout = stdout if stdout is not None else sys.stdout

    def say(self, text: str = "") -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def _answer(self, prompt: str) -> Optional[str]:
        self.stdout.write(prompt)
        self.stdout.flush()
        line = self.stdin.readline()
        if not line:
            self.say("")
            return None
        return line.strip().lower()

    def confirm(self, question: str, default_when_yes: bool = True) -> bool:
        """Ask a yes/no question; with --yes the answer is `default_when_yes`."""
        if self.assume_yes:
            self.say("%s %s (--yes)" % (question, "yes" if default_when_yes else "no"))
            return default_when_yes
        self.say(question)
        while True:
            answer = self._answer("Answer y/n: ")
            if answer is None:
                raise Aborted("No answer (end of input). Answer the question, or pass --yes.")
            if answer in YES:
                return True
            if answer in NO:
                return False

    def password(self, prompt: str, from_stdin: bool) -> str:
        if from_stdin:
            line = self.stdin.readline()
            password = line[:-1] if line.endswith("\n") else line
            password = password[:-1] if password.endswith("\r") else password
        else:
            try:
                password = getpass.getpass(prompt)
            except EOFError:
                password = ""
        if not password:
            raise Aborted("No password given. Type the guest user's password at the prompt, or "
                          "pass it on standard input with --password-stdin.")
        return password


class Collector(Console):
    """A console for the plugin: no questions (every confirm takes its default),
    no password prompt; what is said becomes the call's report (`text()`)."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        super().__init__(assume_yes=True, stdin=io.StringIO(""), stdout=self._buffer)

    def confirm(self, question: str, default_when_yes: bool = True) -> bool:
        return default_when_yes

    def password(self, prompt: str, from_stdin: bool) -> str:
        raise Aborted("No password: give it as a XAPI secret (passwordsecret).")

    def text(self) -> str:
        return self._buffer.getvalue().rstrip("\n")
