"""dmsctl: the operator's command line over the control plane's REST API (README.md, "dmsctl").

Standard library only, so that it runs from any Python 3.11 without the control plane's packages.
"""

VERSION = "1.0"
