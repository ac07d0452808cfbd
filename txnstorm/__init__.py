"""txnstorm: does a QMP transaction capture one point in time while I/O storms?"""

from pathlib import Path

__version__ = "0.1.0"

# txnstorm runs from its checkout: guests/, tests/, scripts/ and known-issues.json are here.
REPO = Path(__file__).resolve().parent.parent
