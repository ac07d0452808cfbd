"""txnstorm: does a QMP transaction capture one point in time while I/O storms?"""

__version__ = "0.1.0"
