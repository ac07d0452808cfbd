"""The host side, below any QEMU process: which QEMU and qemu-img are under test (``sut``), the
guest in the cache (``assets``, ``cachedir``), private scratch dirs (``scratch``) and qemu-img as a
library (``images``).  The accelerator probe, the QMP schema probe and everything that runs QEMU
are the ``vm`` layer's."""
