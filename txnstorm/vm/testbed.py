"""The test bed: the user's settings made into what every machine of a run shares.

One start-up sequence for every entry point that boots or probes the QEMU under test (a scenario
test's set-up, ``txnstorm preflight|accel|boot|doctor``, ``make bench``, ``make reliability``,
``scripts/storm-stop-repro``): settings -> the system under test (``host.sut``, first: a wrong QEMU
must not cost a guest build) -> the guest (``host.assets``) -> the accelerator (``vm.accel``, its
KVM probe watched as the user asked) -> the capabilities (``vm.caps``, with the user's QMP window)
-> the ``Platform`` every machine is launched on (trace events, kept cores, the QMP window).

Errors keep their meaning: a ``UserError`` (a wrong QEMU, a missing guest, a bad ACCEL) is bad
input; a ``QemuFailure`` of the capability probe is a finding about that QEMU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from txnstorm.host import assets, sut
from txnstorm.host.assets import GuestImage
from txnstorm.host.sut import SystemUnderTest
from txnstorm.settings import Settings
from txnstorm.vm import accel, caps
from txnstorm.vm.accel import AccelChoice
from txnstorm.vm.caps import Capabilities
from txnstorm.vm.machine import Platform
from txnstorm.vm.qemu_process import Keeping


def quiet(_: str) -> None:
    """A ``say`` that says nothing."""


@dataclass(frozen=True)
class Bed:
    """What a run's machines share, from its ``settings``: ``guest``, ``accel`` and ``platform``
    are None when no guest was asked for, ``caps`` when no capabilities were."""

    settings: Settings
    sut: SystemUnderTest
    guest: GuestImage | None = None
    accel: AccelChoice | None = None
    caps: Capabilities | None = None
    platform: Platform | None = None

    @property
    def keeping(self) -> Keeping:
        """How any QEMU of the run is watched: kept cores, the QMP answer window."""
        return keeping_of(self.settings)

    def with_caps(self, say: Callable[[str], None] = quiet) -> Bed:
        """This bed with its QEMU's capabilities (probed with the user's QMP window, kept per
        binary); a QEMU that cannot answer its schema raises its ``QemuFailure`` (the bed's QEMU is
        known to the caller by then, for the verdict)."""
        found = caps.probe(self.sut, cache=self.settings.cache_dir, keeping=self.keeping)
        say(f"capabilities: {found.describe()}")
        return replace(self, caps=found)

    def platform_for(self, guest: GuestImage, accel_name: str | None = None) -> Platform:
        """The platform for another guest (``make bench``'s plain Debian) or accelerator, with
        every setting of this bed's."""
        chosen = accel_name or (self.accel.accel if self.accel else "tcg")
        return platform_of(self.settings, self.sut, guest, chosen)


def keeping_of(settings: Settings) -> Keeping:
    return Keeping(settings.keep_cores, settings.qmp_answer_s)


def platform_of(settings: Settings, system: SystemUnderTest, guest: GuestImage, accel_name: str) -> Platform:
    """A platform with every setting a machine reads: trace events, kept cores, the QMP window."""
    return Platform(system, guest.boot_files(), accel_name, settings.qemu_trace, settings.keep_cores,
                    settings.qmp_answer_s)  # fmt: skip


def guest(
    settings: Settings, *, recipe: str = "tiny", allow_build: bool = False, say: Callable[[str], None] = quiet
) -> GuestImage:
    """The verified guest ``recipe`` in the settings' cache (built when ``allow_build``)."""
    return assets.ensure_guest(recipe, allow_build=allow_build, say=say, cache=settings.cache_dir)


def set_up(  # noqa: PLR0913 - the settings and what of the sequence this entry point needs
    settings: Settings,
    *,
    say: Callable[[str], None] = quiet,
    needs_guest: bool = True,
    needs_caps: bool = True,
    allow_build: bool = False,
    recipe: str = "tiny",
    reprobe: bool = False,
) -> Bed:
    """The test bed ``settings`` name, each step said through ``say`` as it is known: the QEMU under
    test; with ``needs_guest`` the guest (built when ``allow_build``), the accelerator (``reprobe``:
    forget a kept KVM verdict) and the platform; with ``needs_caps`` its capabilities (``Bed.with_caps``)."""
    system = sut.resolve_settings(settings)
    say(f"system under test: {system.describe()}")
    image = choice = platform = None
    if needs_guest:
        image = guest(settings, recipe=recipe, allow_build=allow_build, say=say)
        say(f"guest: {image.directory} (kernel {image.build_info.get('kernel_release', '?')})")
        choice = accel.choose(settings.accel, system, image, say=say, reprobe=reprobe, cache=settings.cache_dir,
                              keeping=keeping_of(settings), trace=settings.qemu_trace)  # fmt: skip
        say(f"accel: {choice.accel} ({choice.reason})")
        platform = platform_of(settings, system, image, choice.accel)
    bed = Bed(settings, system, image, choice, None, platform)
    return bed.with_caps(say) if needs_caps else bed
