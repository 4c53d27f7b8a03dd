"""Exit codes a script can trust, and the one exception that carries them to `main`."""

OK = 0
REFUSED = 1  # the control plane said no (409: the reasons are printed), or the action failed
USAGE = 2  # bad arguments, an unknown cluster or event, a filter the API refuses
AUTH = 3  # no token, a wrong token, or a role that may not do this
UNREACHABLE = 4  # cannot connect, or the control plane answered with a server error
TIMEOUT = 5  # switchover: no outcome within --timeout (it may still complete)

EXIT_CODES = f"""exit codes:
  {OK}  done
  {REFUSED}  refused (the reasons are printed) or the switchover failed
  {USAGE}  usage: bad arguments, no such cluster or event
  {AUTH}  authentication: no token, a wrong token, or a role that may not do this
  {UNREACHABLE}  cannot connect to the control plane, or it answered with a server error
  {TIMEOUT}  switchover: no outcome within --timeout"""


class CliError(Exception):
    def __init__(self, code: int, message: str, reasons: list[str] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reasons = reasons or []
